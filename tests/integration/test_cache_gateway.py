"""The cache through the gateway: real Redis Stack, the real bundled embedder, the fake
upstream as a separate process."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from cache.embedder import HashEmbedder, SentenceTransformerEmbedder
from cache.semantic import SemanticCache
from cache.settings import CacheSettings
from cache.stores.redis import RedisStore
from proxy.auth import hash_key
from tests.conftest import ROOT, free_port, route

pytestmark = pytest.mark.integration

KEYS = {"a": "sk-tenant-a", "b": "sk-tenant-b"}
# TestClient answers with its own HTTP library's Response type (httpx or its successor).
Reply = Any
QUESTION = "How do I reverse a list in Python?"
PARAPHRASE = "How can I reverse a Python list?"  # similarity 0.979 with the bundled model
DIFFERENT = "How do I sort a list in Python?"  # similarity 0.574


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    """One loaded model for the module; each app starts its own batching worker on it."""
    return SentenceTransformerEmbedder()


@pytest.fixture
def open_gateway(
    gateway_client: Callable[..., TestClient],
    embedder: SentenceTransformerEmbedder,
    fake_upstream: str,
) -> Callable[..., TestClient]:
    def build(
        redis_url: str, model: SentenceTransformerEmbedder | None = None, **cache: Any
    ) -> TestClient:
        # A roomy lookup budget: CPU on shared CI machines is too uneven for 50 ms here;
        # the budget itself is tested on fakes (tests/unit/test_semantic_cache.py).
        settings = CacheSettings(**{"threshold": 0.9, "lookup_budget_ms": 2000, **cache})
        return gateway_client(
            cache=SemanticCache(settings, RedisStore(redis_url), model or embedder),
            auth={"api_keys": [{"tenant": t, "key_sha256": hash_key(k)} for t, k in KEYS.items()]},
            admin_key_sha256=hash_key("sk-admin"),
            model_list=[
                route("fake-gpt", "fake-gpt", fake_upstream),
                route("other-gpt", "fake-gpt", fake_upstream),
                route("slow-gpt", "sleep-300", fake_upstream),
            ],
        )

    return build


@pytest.fixture
def client(open_gateway: Callable[..., TestClient], redis_url: str) -> TestClient:
    return open_gateway(redis_url)


class Asker:
    """Sends chat requests in a namespace of its own, so tests never share entries."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.namespace = uuid.uuid4().hex[:16]

    def ask(
        self,
        text: str,
        *,
        tenant: str = "a",
        model: str = "fake-gpt",
        system: str | None = None,
        history: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **body: Any,
    ) -> Reply:
        messages = [*(history or []), {"role": "user", "content": text}]
        if system:
            messages.insert(0, {"role": "system", "content": system})
        return self.client.post(
            "/v1/chat/completions",
            headers={
                "authorization": f"Bearer {KEYS[tenant]}",
                "x-vetcache-namespace": self.namespace,
                **(headers or {}),
            },
            json={"model": model, "messages": messages, **body},
        )

    def admitted(self, response: Reply) -> Reply:
        """``response``, once the background admission it started has landed."""
        for _ in range(100):
            check = self.ask_again(response)
            if check.headers["x-vetcache"] == "hit":
                return response
            time.sleep(0.05)
        raise AssertionError("the answer was never admitted")

    def ask_again(self, response: Reply) -> Reply:
        request = response.request
        return self.client.post(str(request.url), headers=request.headers, content=request.content)


def content(response: Reply) -> str:
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["message"]["content"])


def test_paraphrase_hits_and_different_question_misses(client: TestClient) -> None:
    asker = Asker(client)
    first = asker.ask(QUESTION)
    assert first.headers["x-vetcache"] == "miss"
    asker.admitted(first)
    hit = asker.ask(PARAPHRASE)
    assert hit.headers["x-vetcache"] == "hit"
    assert content(hit) == content(first)  # the cached answer, which echoes the first prompt
    assert float(hit.headers["x-vetcache-similarity"]) > 0.95
    assert hit.headers["x-vetcache-entry"] and int(hit.headers["x-vetcache-age"]) >= 0
    miss = asker.ask(DIFFERENT)
    assert miss.headers["x-vetcache"] == "miss"
    assert 0.3 < float(miss.headers["x-vetcache-similarity"]) < 0.9
    assert DIFFERENT in content(miss)


@pytest.mark.parametrize(
    "variant",
    [
        {"tenant": "b"},
        {"model": "other-gpt"},
        {"system": "Answer like a pirate."},
        {"tools": [{"type": "function", "function": {"name": "run_code", "parameters": {}}}]},
        {"temperature": 1.3},
    ],
    ids=["tenant", "model", "system-prompt", "tools", "temperature"],
)
def test_same_prompt_across_a_boundary_misses(client: TestClient, variant: dict[str, Any]) -> None:
    asker = Asker(client)
    asker.admitted(asker.ask(QUESTION))
    assert asker.ask(QUESTION).headers["x-vetcache"] == "hit"
    crossed = asker.ask(QUESTION, **variant)
    assert crossed.headers["x-vetcache"] == "miss"
    assert "x-vetcache-similarity" not in crossed.headers  # nothing at all in that scope


def test_multi_turn_with_other_history_misses(client: TestClient) -> None:
    asker = Asker(client)

    def history(country: str) -> list[dict[str, Any]]:
        return [
            {"role": "user", "content": f"What is the capital of {country}?"},
            {"role": "assistant", "content": "It is the largest city there."},
        ]

    asker.admitted(asker.ask("And what is its population?", history=history("France")))
    same = asker.ask("And what is its population?", history=history("France"))
    assert same.headers["x-vetcache"] == "hit"
    other = asker.ask("And what is its population?", history=history("Japan"))
    assert other.headers["x-vetcache"] == "miss"


def test_streamed_hit_replays_the_json_hit(client: TestClient) -> None:
    asker = Asker(client)
    asker.admitted(asker.ask(QUESTION))
    json_hit = asker.ask(PARAPHRASE)
    streamed = asker.ask(PARAPHRASE, stream=True, stream_options={"include_usage": True})
    assert streamed.headers["x-vetcache"] == "hit"
    events = [e.removeprefix("data: ") for e in streamed.text.split("\n\n") if e]
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert len(chunks) > 3
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == content(json_hit)
    assert chunks[-1]["usage"] == json_hit.json()["usage"]


def test_streamed_miss_is_admitted_once_complete(client: TestClient) -> None:
    asker = Asker(client)
    streamed = asker.ask(QUESTION, stream=True)
    assert streamed.headers["x-vetcache"] == "miss"
    chunks = [orjson.loads(e[6:]) for e in streamed.text.split("\n\n") if e[6:7] == "{"]
    assert chunks and all("usage" not in chunk for chunk in chunks)  # not asked for: not shown
    # Probed with no-store (looks up, never stores): the entry found is the stream's.
    probe = asker.admitted(asker.ask(QUESTION, headers={"cache-control": "no-store"}))
    assert content(asker.ask(PARAPHRASE)).endswith(QUESTION)
    # The upstream was asked for usage all the same: the entry carries it, so its hits do
    # (and the tokens they save are counted).
    usage = asker.ask_again(probe).json()["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0


def test_per_request_threshold_only_tightens_without_admin(client: TestClient) -> None:
    asker = Asker(client)
    asker.admitted(asker.ask(QUESTION))
    strict = asker.ask(PARAPHRASE, headers={"x-vetcache-threshold": "0.995"})
    assert strict.headers["x-vetcache"] == "miss"
    assert strict.headers["x-vetcache-threshold"] == "0.9950"
    loose = asker.ask(DIFFERENT, headers={"x-vetcache-threshold": "0.1"})
    assert loose.headers["x-vetcache"] == "miss"  # 0.1 ignored: may only tighten
    assert loose.headers["x-vetcache-threshold"] == "0.9000"
    admin = asker.ask(
        DIFFERENT, headers={"x-vetcache-threshold": "0.1", "x-vetcache-admin-key": "sk-admin"}
    )
    assert admin.headers["x-vetcache"] == "hit"


@pytest.mark.parametrize("value", ["high", "1.5", "nan"])
def test_invalid_threshold_header_is_a_400(client: TestClient, value: str) -> None:
    response = Asker(client).ask(QUESTION, headers={"x-vetcache-threshold": value})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "x-vetcache-threshold"


def test_cache_control_directives(client: TestClient) -> None:
    asker = Asker(client)
    not_stored = asker.ask(QUESTION, headers={"cache-control": "no-store"})
    assert not_stored.headers["x-vetcache"] == "miss"
    time.sleep(0.3)  # give a (wrong) background admission time to land
    assert (
        asker.ask(QUESTION, headers={"cache-control": "no-store"}).headers["x-vetcache"] == "miss"
    )
    skipped = asker.ask(QUESTION, headers={"cache-control": "no-cache"})
    assert skipped.headers["x-vetcache"] == "bypass"  # looked nothing up, but stores
    # Probing with no-store (looks up, never stores) shows the bypassed answer was stored.
    asker.admitted(asker.ask(QUESTION, headers={"cache-control": "no-store"}))


def test_answers_that_must_not_be_cached_are_not(client: TestClient) -> None:
    asker = Asker(client)
    truncated = asker.ask(QUESTION, max_tokens=2)  # finish_reason "length"
    assert truncated.json()["choices"][0]["finish_reason"] == "length"
    time.sleep(0.3)
    assert asker.ask(QUESTION, max_tokens=2).headers["x-vetcache"] == "miss"


def test_identical_concurrent_misses_make_one_upstream_call(
    client: TestClient, fake_upstream: str
) -> None:
    asker = Asker(client)
    question = f"{QUESTION} ({asker.namespace})"
    counts = fake_upstream.removesuffix("/v1") + "/fake/requests"
    before = httpx.get(counts).json().get("/chat/completions sleep-300", 0)
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: asker.ask(question, model="slow-gpt"), range(6)))
    assert {content(a) for a in answers} == {content(answers[0])}
    after = httpx.get(counts).json()["/chat/completions sleep-300"]
    assert after - before == 1


def streamed_content(response: Reply) -> str:
    """The text of a streamed answer (its chunks' deltas, in order)."""
    assert response.status_code == 200, response.text
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def test_identical_concurrent_misses_share_one_call_as_streams_and_json(
    client: TestClient, fake_upstream: str
) -> None:
    """One coalescing protocol for both: streamed and JSON requests for the same prompt in
    flight together make one upstream call; every one of them gets the same answer."""
    asker = Asker(client)
    question = f"{PARAPHRASE} ({asker.namespace})"
    counts = fake_upstream.removesuffix("/v1") + "/fake/requests"
    before = httpx.get(counts).json().get("/chat/completions sleep-300", 0)

    def one(n: int) -> str:
        reply = asker.ask(question, model="slow-gpt", stream=n % 2 == 0)
        return streamed_content(reply) if n % 2 == 0 else content(reply)

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(one, range(6)))
    assert len(set(answers)) == 1 and answers[0]
    after = httpx.get(counts).json()["/chat/completions sleep-300"]
    assert after - before == 1


@pytest.fixture
def own_redis() -> Iterator[tuple[str, Callable[[], None], Callable[[], None]]]:
    """A Redis Stack this test may stop and start: (url, stop, start)."""
    port = str(free_port())
    script = str(ROOT / "scripts" / "redis-stack.sh")

    def start() -> None:
        subprocess.run(
            ["bash", script, "start", port], check=True, capture_output=True, timeout=120
        )

    def stop() -> None:
        subprocess.run(["bash", script, "stop", port], check=True, capture_output=True, timeout=60)
        time.sleep(0.2)

    start()
    try:
        yield f"redis://127.0.0.1:{port}/0", stop, start
    finally:
        stop()


def test_redis_outage_fails_open_and_hits_resume(
    open_gateway: Callable[..., TestClient],
    own_redis: tuple[str, Callable[[], None], Callable[[], None]],
) -> None:
    url, stop_redis, start_redis = own_redis
    asker = Asker(open_gateway(url))
    asker.admitted(asker.ask(QUESTION))
    stop_redis()
    for text in (QUESTION, PARAPHRASE, DIFFERENT):
        response = asker.ask(text)
        assert response.status_code == 200
        assert response.headers["x-vetcache"] == "fail_open"
        assert text in content(response)  # answered by the upstream
    start_redis()  # empty: no persistence
    first = asker.ask(QUESTION)
    assert first.status_code == 200 and first.headers["x-vetcache"] in ("miss", "fail_open")
    asker.admitted(asker.ask(QUESTION))
    assert asker.ask(PARAPHRASE).headers["x-vetcache"] == "hit"


async def test_live_threshold_set_through_one_replica_governs_another(
    open_gateway: Callable[..., TestClient], redis_url: str
) -> None:
    """Replica A is a gateway; replica B is the cache of a second process, reduced to what
    decides its threshold (two gateways in one test process would share litellm's
    process-wide HTTP clients across event loops)."""
    replica_a = open_gateway(redis_url, threshold_refresh_s=0.2)
    asker = Asker(replica_a)
    replica_b = SemanticCache(
        CacheSettings(threshold=0.9, threshold_refresh_s=0.2), RedisStore(redis_url), HashEmbedder()
    )
    await replica_b.open()
    try:
        admin = {"authorization": "Bearer sk-admin"}
        path = f"/admin/thresholds/{asker.namespace}"
        assert replica_a.put(path, headers=admin, json={"threshold": 0.999}).status_code == 200
        deadline = time.monotonic() + 5
        while replica_b.threshold(asker.namespace, None, False) != 0.999:
            assert time.monotonic() < deadline, "replica B never followed the new threshold"
            await asyncio.sleep(0.1)
        asker.admitted(asker.ask(QUESTION))
        strict = asker.ask(PARAPHRASE)
        assert strict.headers["x-vetcache"] == "miss"  # replica A applies it too
        assert strict.headers["x-vetcache-threshold"] == "0.9990"
        listed = replica_a.get("/admin/thresholds", headers=admin).json()
        assert listed["namespaces"][asker.namespace] == 0.999
        assert replica_a.put(path, headers=admin, json={"threshold": None}).status_code == 200
        refused = replica_a.put(
            path, headers={"authorization": f"Bearer {KEYS['a']}"}, json={"threshold": 0.1}
        )
        assert refused.status_code == 401
    finally:
        await replica_b.close()
