"""The direct lane (``proxy.lane_client``) against the real fake-upstream process: retries,
fallbacks, timeouts, a stream failing midway, and a stream's connection released when its
reader goes away."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import orjson
import pytest

from proxy.errors import GatewayError, UpstreamTimeout
from proxy.settings import Settings
from proxy.upstream import Upstream
from tests.conftest import free_port, route, stop, vetcache, wait_http

pytestmark = pytest.mark.integration


MESSAGES = [{"role": "user", "content": "hello"}]


def _body(alias: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"model": alias, "messages": [{"role": "user", "content": text}], **extra}


def _received(fake_upstream: str) -> dict[str, int]:
    counts: dict[str, int] = httpx.get(fake_upstream.removesuffix("/v1") + "/fake/requests").json()
    return counts


@pytest.fixture
async def upstream(fake_upstream: str) -> AsyncIterator[Callable[..., Upstream]]:
    """An opened ``Upstream`` over the given routes (closed after the test)."""
    opened: list[Upstream] = []

    async def build(*routes: dict[str, Any]) -> Upstream:
        made = Upstream(Settings(auth={"enabled": False}, model_list=list(routes)))
        await made.open()
        opened.append(made)
        return made

    yield build  # type: ignore[misc]
    for made in opened:
        await made.aclose()


async def test_openai_routes_with_an_api_base_take_the_direct_lane(
    upstream: Callable[..., Any], fake_upstream: str
) -> None:
    gateway = await upstream(
        route("direct", "fake-gpt", fake_upstream),
        route("translated", "fake-gpt", fake_upstream, wire="litellm"),
    )
    assert (gateway.lane("direct"), gateway.lane("translated")) == ("direct", "litellm")
    reply = await gateway.chat(_body("direct", "hi"))
    assert reply.completion["choices"][0]["message"]["content"].startswith("[fake-gpt] reply")
    assert reply.completion["usage"]["total_tokens"] > 0
    assert reply.answered_by == "direct"


@pytest.mark.parametrize("stream", [False, True])
async def test_failures_worth_it_are_retried_as_configured(
    upstream: Callable[..., Any], fake_upstream: str, stream: bool
) -> None:
    gateway = await upstream(
        route("retried", "flaky-2", fake_upstream, num_retries=2),
        route("short", "flaky-2", fake_upstream, num_retries=1),
    )
    text = f"retry me {stream} {time.time()}"
    call = gateway.chat_stream if stream else gateway.chat
    reply = await call(_body("retried", text))
    if stream:
        assert [chunk async for chunk in reply.chunks]
    assert _received(fake_upstream)["/chat/completions flaky-2"] >= 3
    with pytest.raises(GatewayError) as raised:
        await call(_body("short", text + " again"))
    assert (raised.value.status_code, raised.value.code) == (503, "fake_503")


async def test_a_rejected_request_is_not_retried_nor_falls_back(
    upstream: Callable[..., Any], fake_upstream: str
) -> None:
    gateway = await upstream(
        route("rejects", "error-400", fake_upstream, num_retries=3, fallbacks=["backup"]),
        route("backup", "fake-gpt", fake_upstream),
    )
    before = _received(fake_upstream).get("/chat/completions error-400", 0)
    with pytest.raises(GatewayError) as raised:
        await gateway.chat(_body("rejects", "bad"))
    assert (raised.value.status_code, raised.value.code) == (400, "fake_400")
    assert _received(fake_upstream)["/chat/completions error-400"] - before == 1


async def test_retry_after_is_waited_for(upstream: Callable[..., Any], fake_upstream: str) -> None:
    gateway = await upstream(route("limited", "retry-after-1", fake_upstream, num_retries=1))
    started = time.monotonic()
    reply = await gateway.chat(_body("limited", f"wait {time.time()}"))
    assert reply.completion["choices"]
    assert time.monotonic() - started >= 1.0  # the upstream asked for a second


@pytest.mark.parametrize("stream", [False, True])
async def test_the_fallback_chain_answers_and_is_named(
    upstream: Callable[..., Any], fake_upstream: str, stream: bool
) -> None:
    gateway = await upstream(
        route("primary", "error-500", fake_upstream, fallbacks=["down", "backup"]),
        route("down", "error-503", fake_upstream),
        route("backup", "fake-gpt", fake_upstream, wire="litellm"),  # across lanes
        route("direct-backup", "fake-gpt", fake_upstream),
        route("other", "error-502", fake_upstream, fallbacks=["direct-backup"]),
    )
    call = gateway.chat_stream if stream else gateway.chat
    for alias, answering in (("primary", "backup"), ("other", "direct-backup")):
        reply = await call(_body(alias, "fall back"))
        if stream:
            text = "".join(
                [
                    c["choices"][0]["delta"].get("content") or ""
                    async for c in reply.chunks
                    if c["choices"]
                ]
            )
            assert text.startswith("[fake-gpt] reply")
            assert reply.answering() == answering
        else:
            assert reply.answered_by == answering


async def test_when_the_whole_chain_fails_the_alias_own_error_is_raised_and_logged_once(
    upstream: Callable[..., Any], fake_upstream: str, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = await upstream(
        route("primary", "echo-500", fake_upstream, fallbacks=["backup"]),
        route("backup", "error-503", fake_upstream),
    )
    with (
        caplog.at_level(logging.INFO, logger="vetcache.upstream"),
        pytest.raises(GatewayError) as raised,
    ):
        await gateway.chat(_body("primary", "secret prompt text"))
    assert (raised.value.status_code, raised.value.code) == (500, "fake_500")
    lines = [r for r in caplog.records if r.name == "vetcache.upstream"]
    assert len(lines) == 1
    assert "secret" not in lines[0].getMessage() and "HTTP 500" in lines[0].getMessage()


async def test_a_stream_idle_past_its_read_timeout_fails_with_a_timeout(
    upstream: Callable[..., Any], fake_upstream: str
) -> None:
    gateway = await upstream(
        route("idle", "slow-stream-3000", fake_upstream, stream_idle_timeout=0.3, num_retries=2)
    )
    stream = await gateway.chat_stream(_body("idle", "one two three"))
    chunks = stream.chunks.__aiter__()
    assert (await anext(chunks))["choices"]  # the first chunk came at once
    before = _received(fake_upstream)["/chat/completions slow-stream-3000"]
    with pytest.raises(UpstreamTimeout):
        async for _chunk in chunks:
            pass
    # never retried once the first chunk was out
    assert _received(fake_upstream)["/chat/completions slow-stream-3000"] == before


async def test_a_stream_cut_midway_raises_from_the_chunks_and_is_not_retried(
    upstream: Callable[..., Any], fake_upstream: str
) -> None:
    gateway = await upstream(route("cut", "truncate", fake_upstream, num_retries=2))
    before = _received(fake_upstream).get("/chat/completions truncate", 0)
    stream = await gateway.chat_stream(_body("cut", "a b c d e f"))
    seen: list[dict[str, Any]] = []

    async def read() -> None:
        async for chunk in stream.chunks:
            seen.append(chunk)

    with pytest.raises(GatewayError) as raised:
        await read()
    assert seen and raised.value.code == "upstream_unreachable"
    assert _received(fake_upstream)["/chat/completions truncate"] - before == 1


async def _aborted(fake_upstream: str, model: str, before: int) -> int:
    for _ in range(50):  # the fake sees the connection go within a few ms
        now = _received(fake_upstream).get(f"stream aborted {model}", 0)
        if now > before:
            return now - before
        await asyncio.sleep(0.05)
    return 0


@pytest.mark.parametrize("how", ["aclose", "cancel"])
async def test_a_reader_going_away_releases_the_upstream_stream(
    upstream: Callable[..., Any], fake_upstream: str, how: str
) -> None:
    model = "slow-stream-200"
    gateway = await upstream(route("slow", model, fake_upstream))
    before = _received(fake_upstream).get(f"stream aborted {model}", 0)
    stream = await gateway.chat_stream(_body("slow", "one two three four five six seven"))
    chunks = stream.chunks
    if how == "aclose":
        await anext(chunks)
        await chunks.aclose()
    else:
        await anext(chunks)  # the role, then the first word, both at once
        await anext(chunks)
        reader = asyncio.create_task(anext(chunks))  # waits for the next word
        await asyncio.sleep(0.05)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        await chunks.aclose()
    assert await _aborted(fake_upstream, model, before) == 1
    assert f"stream finished {model}" not in _received(fake_upstream)


@pytest.mark.parametrize("wire", ["openai", "litellm"])
async def test_a_stream_closed_unread_releases_the_upstream_stream(
    upstream: Callable[..., Any], fake_upstream: str, wire: str
) -> None:
    """A speculative call dropped by a hit, or a client gone before its first chunk: the
    chunks are closed without a read, and the connection goes all the same."""
    model = "slow-stream-300"
    gateway = await upstream(route("slow", model, fake_upstream, wire=wire))
    before = _received(fake_upstream).get(f"stream aborted {model}", 0)
    stream = await gateway.chat_stream(_body("slow", "one two three four five six seven"))
    await stream.chunks.aclose()
    assert await _aborted(fake_upstream, model, before) == 1
    assert f"stream finished {model}" not in _received(fake_upstream)


async def test_streams_always_ask_the_upstream_for_usage_on_both_lanes(
    upstream: Callable[..., Any], fake_upstream: str
) -> None:
    gateway = await upstream(
        route("direct", "fake-gpt", fake_upstream),
        route("translated", "fake-gpt", fake_upstream, wire="litellm"),
    )
    for alias in ("direct", "translated"):
        stream = await gateway.chat_stream(_body(alias, "count me"))
        chunks = [chunk async for chunk in stream.chunks]
        assert any(chunk.get("usage") for chunk in chunks), alias


async def test_deployments_share_an_alias_and_one_cooling_down_is_skipped(
    upstream: Callable[..., Any], fake_upstream: str
) -> None:
    gateway = await upstream(
        route("spread", "spread-a", fake_upstream),
        route("spread", "spread-b", fake_upstream),
        route("cooling", "error-503", fake_upstream, cooldown_s=60.0, num_retries=3),
        route("cooling", "cool-backup", fake_upstream, cooldown_s=60.0, num_retries=3),
    )
    for i in range(30):
        await gateway.chat(_body("spread", f"spread {i}"))
    counts = _received(fake_upstream)
    assert counts["/chat/completions spread-a"] > 0 and counts["/chat/completions spread-b"] > 0
    before = counts.get("/chat/completions error-503", 0)
    for i in range(20):
        reply = await gateway.chat(_body("cooling", f"cool {i}"))
        assert reply.completion["model"] == "cool-backup"
    # the failing deployment was tried at most once: then it cooled down for a minute
    assert _received(fake_upstream).get("/chat/completions error-503", 0) - before <= 1


class _Recorder(BaseHTTPRequestHandler):
    """An upstream that records what reached it and answers one fixed completion."""

    seen: ClassVar[list[tuple[dict[str, str], dict[str, Any]]]] = []

    def do_POST(self) -> None:
        body = orjson.loads(self.rfile.read(int(self.headers["content-length"])))
        self.seen.append(({k.lower(): v for k, v in self.headers.items()}, body))
        answer = orjson.dumps(
            {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
             "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                          "finish_reason": "stop"}],
             "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
        )  # fmt: skip
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_args: Any) -> None:
        pass


def test_no_client_header_reaches_the_upstream_and_the_model_is_rewritten(
    gateway_client: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("VETCACHE_TEST_UPSTREAM_KEY", "sk-route-key")
    try:
        client = gateway_client(
            auth={"api_keys": [{"tenant": "t", "key": "sk-gateway-key"}]},
            model_list=[
                route("recorded", "real-name", f"http://127.0.0.1:{server.server_port}/v1",
                      api_key_env="VETCACHE_TEST_UPSTREAM_KEY",
                      params={"organization": "org-7"})
            ],
        )  # fmt: skip
        response = client.post(
            "/v1/chat/completions",
            headers={"Authorization": "Bearer sk-gateway-key", "X-Secret": "s3", "Cookie": "c=1"},
            json={"model": "recorded", "messages": MESSAGES, "vendor_knob": 7},
        )
    finally:
        server.shutdown()
        server.server_close()
    assert response.status_code == 200, response.text
    headers, body = _Recorder.seen[-1]
    assert headers["authorization"] == "Bearer sk-route-key"
    assert headers["openai-organization"] == "org-7"
    assert not {"x-secret", "cookie", "x-request-id"} & set(headers)
    assert body == {"model": "real-name", "messages": MESSAGES, "vendor_knob": 7}


def _connections_to(port: int) -> int:
    """Established TCP connections to ``port`` (their client ends), machine-wide."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[2].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


async def _settles(port: int, expected: int) -> int:
    for _ in range(100):
        if (now := _connections_to(port)) == expected:
            return now
        await asyncio.sleep(0.02)
    return _connections_to(port)


@pytest.mark.parametrize("stream", [False, True])
async def test_cancelling_a_call_before_its_answer_closes_its_connection(
    upstream: Callable[..., Any], fake_upstream: str, stream: bool
) -> None:
    """What a client going away or a cancelled speculation does: the upstream connection
    goes at once, not back to the pool half-read, not left waiting for the answer."""
    port = int(fake_upstream.rsplit(":", 1)[1].split("/")[0])
    gateway = await upstream(route("slow", "sleep-5000", fake_upstream))
    assert await _settles(port, 0) == 0  # nothing else talks to the fake now
    call = gateway.chat_stream if stream else gateway.chat
    task = asyncio.create_task(call(_body("slow", "cancel me")))
    assert await _settles(port, 1) == 1  # the call is waiting on its connection
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _settles(port, 0) == 0


@pytest.mark.parametrize("wire", ["openai", "litellm"])
def test_a_client_leaving_a_stream_releases_the_upstream_stream(
    fake_upstream: str, tmp_path: Path, wire: str
) -> None:
    """Through a real ``vetcache serve``: the client reads the first event and hangs up; the
    gateway closes its upstream stream at once instead of reading it to the end."""
    model = "slow-stream-250"
    config = tmp_path / "gateway.yaml"
    config.write_text(
        "auth: {enabled: false}\naccess_log: false\ncache: {enabled: false}\nmodel_list:\n"
        f"  - {{model_name: slow, model: openai/{model}, api_base: '{fake_upstream}', "
        f"wire: {wire}}}\n"
    )
    port = free_port()
    gateway = vetcache("serve", "--config", str(config), "--port", str(port))
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", gateway)
        before = _received(fake_upstream).get(f"stream aborted {model}", 0)
        body = _body("slow", "one two three four five six seven eight", stream=True)
        with httpx.stream(
            "POST", f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=10
        ) as response:
            assert response.status_code == 200
            assert next(response.iter_lines()).startswith("data: {")
        aborted = 0
        for _ in range(60):  # eight words 250 ms apart: finished would take ~1.75 s
            aborted = _received(fake_upstream).get(f"stream aborted {model}", 0) - before
            if aborted:
                break
            time.sleep(0.05)
        assert aborted == 1
    finally:
        stop(gateway)
