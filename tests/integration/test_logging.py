"""No prompt or answer text, and no key, in logs at INFO or above."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from cache.embedder import HashEmbedder
from cache.semantic import SemanticCache
from cache.settings import CacheSettings
from cache.stores.memory import MemoryStore
from proxy.auth import hash_key
from tests.conftest import LOGS, free_port, route, stop, vetcache, wait_http

pytestmark = pytest.mark.integration

SECRET_PROMPT = "zebra-quartz-7731 is my private question"
KEY = "sk-logging-test-key-123"


def test_logs_carry_no_prompt_answer_or_key(
    gateway_client: Callable[..., TestClient],
    fake_upstream: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = gateway_client(
        access_log=True,
        auth={"api_keys": [{"tenant": "t", "key_sha256": hash_key(KEY)}]},
        model_list=[
            route("fake-gpt", "fake-gpt", fake_upstream),
            route("broken", "error-500", fake_upstream),
            route("cut", "truncate", fake_upstream),
        ],
    )
    headers = {"authorization": f"Bearer {KEY}"}
    messages = [{"role": "user", "content": SECRET_PROMPT}]
    for model, stream in [
        ("fake-gpt", False),
        ("fake-gpt", True),
        ("broken", False),
        ("cut", True),
    ]:
        client.post(
            "/v1/chat/completions",
            headers=headers,
            json={"model": model, "messages": messages, "stream": stream},
        )
        client.post(  # Anthropic's route, its key header
            "/v1/messages",
            headers={"x-api-key": KEY},
            json={"model": model, "max_tokens": 64, "messages": messages, "stream": stream},
        )
    client.post("/v1/chat/completions", headers={"authorization": "Bearer sk-wrong"}, json={})
    client.post("/v1/messages", headers={"x-api-key": "sk-wrong"}, json={})
    loud = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert any(r.name == "vetcache.access" for r in loud)  # the capture did see the gateway
    for record in loud:
        text = record.getMessage()
        assert "zebra-quartz" not in text, record.name
        assert KEY not in text and "sk-wrong" not in text, record.name


def test_responses_route_logs_carry_no_prompt_answer_or_key(
    gateway_client: Callable[..., TestClient],
    fake_upstream: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``/v1/responses``, cached and passed through (stateful), JSON and streams, answered
    and failed (an upstream quoting the prompt in its error, a stream cut midway)."""
    caplog.set_level(logging.DEBUG)
    client = gateway_client(
        access_log=True,
        auth={"api_keys": [{"tenant": "t", "key_sha256": hash_key(KEY)}]},
        model_list=[
            route("fake-gpt", "fake-gpt", fake_upstream),
            route("echo", "echo-500", fake_upstream),
            route("cut", "truncate", fake_upstream),
        ],
    )
    headers = {"authorization": f"Bearer {KEY}"}
    statuses = []
    for model in ("fake-gpt", "echo", "cut"):
        for state in ({}, {"store": True}):
            for stream in (False, True):
                body = {"model": model, "input": SECRET_PROMPT, "stream": stream, **state}
                statuses.append(
                    client.post("/v1/responses", headers=headers, json=body).status_code
                )
    assert statuses[:4] == [200] * 4 and statuses[4:8] == [500] * 4
    loud = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert any(r.name == "vetcache.access" for r in loud)
    for record in loud:
        text = record.getMessage()
        assert "zebra-quartz" not in text, (record.name, text)
        assert KEY not in text, record.name


def test_each_invalidation_is_one_audit_line_without_entry_text(
    gateway_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    """Who (the admin), the filter and how many were deleted, at INFO; never the prompt or
    answer of what was deleted, nor a key."""
    caplog.set_level(logging.DEBUG)
    client = gateway_client(
        cache=SemanticCache(CacheSettings(threshold=0.95), MemoryStore(), HashEmbedder()),
        auth={"api_keys": [{"tenant": "t", "key_sha256": hash_key(KEY)}]},
        admin_key_sha256=hash_key("sk-logging-admin"),
    )
    asked = {"model": "fake-gpt", "messages": [{"role": "user", "content": SECRET_PROMPT}]}
    headers = {"authorization": f"Bearer {KEY}", "x-vetcache-namespace": "logged"}
    client.post("/v1/chat/completions", headers=headers, json=asked)
    deadline = time.monotonic() + 10
    while (hit := client.post("/v1/chat/completions", headers=headers, json=asked)).headers[
        "x-vetcache"
    ] != "hit":
        assert time.monotonic() < deadline, "never admitted"
        time.sleep(0.05)
    admin = {"authorization": "Bearer sk-logging-admin"}
    entry = hit.headers["x-vetcache-entry"]
    assert client.delete(f"/admin/entries/{entry}", headers=admin).status_code == 200
    body = {"namespace": "logged", "tenant": "t"}
    assert client.post("/admin/invalidate", headers=admin, json=body).json()["deleted"] == 0
    lines = [r for r in caplog.records if r.name == "vetcache.invalidation"]
    assert [(r.levelno, r.__dict__["by"], r.__dict__["deleted"]) for r in lines] == [
        (logging.INFO, "admin", 1),
        (logging.INFO, "admin", 0),
    ]
    assert [r.__dict__["invalidation"] for r in lines] == [{"entry": entry}, body]
    for record in lines:
        text = record.getMessage() + repr(record.__dict__)
        assert "zebra-quartz" not in text and "[fake-gpt] reply" not in text
        assert KEY not in text and "sk-logging-admin" not in text


Sent = dict[str, tuple[int, str | None]]
"""Request id -> (status, ``x-vetcache`` header)."""


def _serve_and_ask(fake_upstream: str, tmp_path: Path) -> tuple[Sent, list[dict[str, Any]]]:
    """A real ``vetcache serve`` (in-process cache, bundled model, auth on) asked a miss, a
    semantic hit, a streamed exact hit, an upstream 500 and a wrong key; what each got, and
    every line it wrote on stderr, parsed (asserting each is one JSON object)."""
    config = tmp_path / "gw.yaml"
    config.write_text(
        f"auth: {{api_keys: [{{tenant: t, key_sha256: {hash_key(KEY)}}}]}}\n"
        "cache: {threshold: 0.9, lookup_budget_ms: 5000}\n"
        "audit: {sample_rate: 1.0}\n"
        "model_list:\n"
        f"  - {{model_name: fake-gpt, model: openai/fake-gpt, api_base: '{fake_upstream}'}}\n"
        f"  - {{model_name: broken, model: openai/error-500, api_base: '{fake_upstream}'}}\n"
    )
    port = free_port()
    process = vetcache("serve", "--config", str(config), "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    sent: Sent = {}
    try:
        wait_http(f"{base}/readyz", process, timeout=120)
        asks = [
            ("fake-gpt", SECRET_PROMPT, False),
            ("fake-gpt", SECRET_PROMPT.upper(), False),  # a semantic hit
            ("fake-gpt", SECRET_PROMPT, True),  # an exact hit, streamed
            ("broken", SECRET_PROMPT + " again", False),  # upstream 500
            ("wrong key", "", False),
        ]
        for model, text, stream in asks:
            key = "sk-wrong" if model == "wrong key" else KEY
            body = {"model": model, "messages": [{"role": "user", "content": text}]}
            response = httpx.post(
                f"{base}/v1/chat/completions",
                headers={"authorization": f"Bearer {key}"},
                json={**body, "stream": stream} if text else {},
                timeout=60,
            )
            sent[response.headers["x-request-id"]] = (
                response.status_code,
                response.headers.get("x-vetcache"),
            )
            if model == "fake-gpt" and text == SECRET_PROMPT and not stream:
                time.sleep(0.5)  # let the answer be admitted
    finally:
        log_file = LOGS[process.pid]
        process.terminate()  # a clean exit: every line is written before it is read
        process.wait(timeout=60)
        text = log_file.read_text()
        stop(process)
    lines = [line for line in text.splitlines() if line.strip()]
    not_json = [line for line in lines if not line.startswith("{")]
    assert not not_json, not_json[:5]
    return sent, [orjson.loads(line) for line in lines]  # every line is one JSON object


def test_a_served_process_logs_json_lines_with_request_outcome_and_timings(
    fake_upstream: str, tmp_path: Path
) -> None:
    """Every line on stderr is one JSON object; each request has one access line with its
    id, status, outcome (as the cache reported it; ``error`` for a failed chat request) and
    stage timings; no prompt, answer or key anywhere at INFO."""
    sent, records = _serve_and_ask(fake_upstream, tmp_path)
    assert [s for s, _ in sent.values()] == [200, 200, 200, 500, 401]
    assert [o for _, o in sent.values()] == ["miss", "hit", "hit", None, None]
    access = {r["request_id"]: r for r in records if r["logger"] == "vetcache.access"}
    logged = ["miss", "hit", "hit", "error", None]  # the 401 never reached the cache
    for (request_id, (status, _)), outcome in zip(sent.items(), logged, strict=True):
        line = access[request_id]
        assert line["level"] == "INFO" and line["status"] == status
        assert line["outcome"] == outcome and line["duration_ms"] > 0
    miss, semantic, exact, broken = (access[i]["timings_ms"] for i in list(sent)[:4])
    assert {"exact_lookup", "embed", "vector_search", "upstream"} <= set(miss)
    assert {"embed", "vector_search"} <= set(semantic) and "upstream" not in semantic
    assert "embed" not in exact and "upstream" not in exact  # the exact layer answered
    assert "upstream" in broken
    for record in records:
        if record["level"] in ("INFO", "WARNING", "ERROR", "CRITICAL"):
            text = orjson.dumps(record).decode().lower()
            assert "zebra-quartz" not in text, record
            assert KEY.lower() not in text and "sk-wrong" not in text, record


ECHOED = "MY-PRIVATE-PROMPT-7781 my SSN is 078-05-1120"


def test_upstream_failures_log_json_without_the_prompt(fake_upstream: str, tmp_path: Path) -> None:
    """An upstream that quotes the prompt in its 400/500 error bodies and replies 200 with an
    HTML page or JSON without ``choices`` (quoting the answer), on both lanes: litellm's own
    loggers report its lane's (they do once any alias has fallbacks); every stderr line is one JSON object,
    none above DEBUG carries the prompt, the unreadable replies are 502s of the gateway's
    code, and each failure is one ``vetcache.upstream`` line with type, status and request id."""
    models = {"e400": "echo-400", "e500": "echo-500", "html": "html", "bare": "no-choices"}
    config = tmp_path / "gw.yaml"
    config.write_text(
        "auth: {enabled: false}\ncache: {enabled: false}\nmodel_list:\n"
        + "".join(
            f"  - {{model_name: {alias}, model: openai/{model}, api_base: '{fake_upstream}'"
            + (", fallbacks: [html]" if alias == "bare" else "")
            # two aliases on litellm's Router, so its loggers are checked too; two direct
            + (", wire: litellm" if alias in ("e500", "bare") else "")
            + "}\n"
            for alias, model in models.items()
        )
    )
    port = free_port()
    process = vetcache("serve", "--config", str(config), "--port", str(port))
    answers: dict[str, tuple[int, str | None]] = {}
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", process, timeout=120)
        for alias in models:
            for stream in (False, True):
                response = httpx.post(
                    f"http://127.0.0.1:{port}/v1/chat/completions",
                    json={"model": alias, "stream": stream,
                          "messages": [{"role": "user", "content": ECHOED}]},
                    timeout=60,
                )  # fmt: skip
                code = response.json()["error"]["code"] if response.status_code >= 400 else None
                answers[response.headers["x-request-id"]] = (response.status_code, code)
                if alias in ("html", "bare"):
                    assert "MY-PRIVATE" not in response.text, response.text
    finally:
        log_file = LOGS[process.pid]
        process.terminate()
        process.wait(timeout=60)
        text = log_file.read_text()
        stop(process)
    records = [orjson.loads(line) for line in text.splitlines() if line.strip()]
    assert [status for status, _ in answers.values()] == [400, 400, 500, 500, 502, 502, 502, 502]
    assert [code for _, code in answers.values()][4:] == ["upstream_invalid_response"] * 4
    assert any(r["logger"].startswith("LiteLLM") for r in records)  # litellm did report them
    for record in records:
        if record["level"] != "DEBUG":
            assert "MY-PRIVATE" not in orjson.dumps(record).decode(), record
    failures = {r["request_id"]: r for r in records if r["logger"] == "vetcache.upstream"}
    assert set(failures) == set(answers)
    for request_id, (status, _) in answers.items():
        assert failures[request_id]["status"] == status and failures[request_id]["error_type"]
