"""Speculation (``cache.speculate``): the upstream call starts at the exact layer's miss and
a semantic hit cancels it. Real Redis Stack, the real bundled embedder (made slower, so the
call is provably under way when the lookup ends), the fake upstream as a separate process."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from cache.embedder import Embedder, HashEmbedder, SentenceTransformerEmbedder, Vector
from cache.semantic import SemanticCache
from cache.settings import CacheSettings
from cache.stores.faulty import FaultyStore
from cache.stores.memory import MemoryStore
from cache.stores.redis import RedisStore
from tests.conftest import route

pytestmark = pytest.mark.integration

QUESTION = "How do I reverse a list in Python?"
PARAPHRASE = "How can I reverse a Python list?"  # similarity 0.979 with the bundled model
EMBED_DELAY_S = 0.3


class SlowEmbedder(Embedder):
    """The real model, answering ``delay`` seconds late: a lookup slow enough that the
    speculative call has reached the upstream before it ends."""

    def __init__(self, inner: SentenceTransformerEmbedder, delay: float) -> None:
        self.inner = inner
        self.delay = delay

    async def open(self) -> None:
        await self.inner.open()
        self.fingerprint, self.dimension = self.inner.fingerprint, self.inner.dimension
        self.window = self.inner.window

    async def close(self) -> None:
        await self.inner.close()

    async def embed(self, text: str, deadline: float | None = None) -> Vector:
        await asyncio.sleep(self.delay)
        return await self.inner.embed(text)


@pytest.fixture(scope="module")
def model() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


@pytest.fixture
def open_gateway(
    gateway_client: Callable[..., TestClient],
    model: SentenceTransformerEmbedder,
    fake_upstream: str,
    redis_url: str,
) -> Callable[..., TestClient]:
    def build(**cache: Any) -> TestClient:
        settings = CacheSettings(**{"threshold": 0.9, "lookup_budget_ms": 5000, **cache})
        embedder = SlowEmbedder(model, EMBED_DELAY_S)
        return gateway_client(
            cache=SemanticCache(settings, RedisStore(redis_url), embedder),
            model_list=[
                route("fake-gpt", "fake-gpt", fake_upstream),
                route("slow-gpt", "sleep-1500", fake_upstream),
            ],
        )

    return build


class Counts:
    """What the fake upstream received, per model, since the last ``taken``."""

    def __init__(self, fake_upstream: str) -> None:
        self.url = fake_upstream.removesuffix("/v1") + "/fake/requests"
        self.before = self._now()

    def _now(self) -> dict[str, int]:
        return dict(httpx.get(self.url).json())

    def taken(self, model: str) -> int:
        now = self._now()
        key = f"/chat/completions {model}"
        count = now.get(key, 0) - self.before.get(key, 0)
        self.before = now
        return count


@pytest.fixture
def counts(fake_upstream: str) -> Counts:
    return Counts(fake_upstream)


def ask(
    client: TestClient, namespace: str, text: str, model: str, *, store: bool = True, **body: Any
) -> Any:
    no_store = {} if store else {"cache-control": "no-store"}
    return client.post(
        "/v1/chat/completions",
        headers={"x-vetcache-namespace": namespace, **no_store},
        json={"model": model, "messages": [{"role": "user", "content": text}], **body},
    )


def text_of(response: Any) -> str:
    """The answer's text, from a JSON body or the content deltas of an event stream."""
    assert response.status_code == 200, response.text
    if not response.headers["content-type"].startswith("text/event-stream"):
        return str(response.json()["choices"][0]["message"]["content"])
    events = [line[6:] for line in response.text.split("\n\n") if line.startswith("data: {")]
    chunks = [orjson.loads(event) for event in events]
    return "".join(c["delta"].get("content") or "" for e in chunks for c in e["choices"])


def speculative(client: TestClient, namespace: str, outcome: str) -> float:
    """``vetcache_speculative_calls_total{namespace, outcome}`` as the gateway exports it."""
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "vetcache_speculative_calls_total" and labels == {
                "namespace": namespace,
                "outcome": outcome,
            }:
                return float(sample.value)
    return 0.0


def filled(client: TestClient, counts: Counts, model: str) -> tuple[str, str]:
    """A namespace holding the answer to ``QUESTION`` (admitted), and that answer."""
    namespace = uuid.uuid4().hex[:12]
    first = ask(client, namespace, QUESTION, model)
    assert first.headers["x-vetcache"] == "miss", first.text
    for _ in range(100):
        if ask(client, namespace, QUESTION, model).headers["x-vetcache"] == "hit":
            break
    counts.taken(model)
    return namespace, first.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize("stream", [False, True])
def test_a_semantic_hit_cancels_the_call_started_at_the_exact_miss(
    open_gateway: Callable[..., TestClient], counts: Counts, stream: bool
) -> None:
    client = open_gateway(speculate=True)
    namespace, answer = filled(client, counts, "slow-gpt")
    assert speculative(client, namespace, "used") == 1  # the miss that filled it
    hit = ask(client, namespace, PARAPHRASE, "slow-gpt", stream=stream)
    assert hit.headers["x-vetcache"] == "hit"
    assert text_of(hit) == answer  # the cached answer
    # The call had been made (the embedding took 0.3 s; the upstream answers after 1.5 s):
    # this is what a speculative hit costs, and it is counted.
    assert counts.taken("sleep-1500") == 1
    assert speculative(client, namespace, "cancelled") == 1
    assert speculative(client, namespace, "used") == 1


@pytest.mark.parametrize("stream", [False, True])
def test_a_miss_is_answered_by_the_speculative_call_alone(
    open_gateway: Callable[..., TestClient], counts: Counts, stream: bool
) -> None:
    client = open_gateway(speculate=True)
    namespace = uuid.uuid4().hex[:12]
    miss = ask(client, namespace, QUESTION, "fake-gpt", stream=stream)
    assert miss.headers["x-vetcache"] == "miss"
    assert QUESTION in text_of(miss)
    assert counts.taken("fake-gpt") == 1  # one call: the speculative one was used
    assert speculative(client, namespace, "used") == 1
    if stream:  # the client did not ask for usage: none shown, although the entry has it
        events = [line for line in miss.text.split("\n\n") if line.startswith("data: {")]
        assert all(b'"usage"' not in event.encode() for event in events)


def test_speculation_is_per_namespace_and_off_by_default(
    open_gateway: Callable[..., TestClient], counts: Counts
) -> None:
    client = open_gateway(speculative_namespaces=["elsewhere"])
    namespace, _ = filled(client, counts, "fake-gpt")
    assert ask(client, namespace, PARAPHRASE, "fake-gpt").headers["x-vetcache"] == "hit"
    assert counts.taken("fake-gpt") == 0  # nothing was started for a namespace not listed
    assert speculative(client, namespace, "cancelled") == 0


def test_identical_misses_in_flight_share_one_call(
    open_gateway: Callable[..., TestClient], counts: Counts
) -> None:
    """The flight table is checked before speculating: a request whose exact key is already
    being asked starts nothing and follows that call."""
    client = open_gateway(speculate=True)
    namespace = uuid.uuid4().hex[:12]
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda _: ask(client, namespace, QUESTION, "slow-gpt"), range(4)))
    answers = {orjson.dumps(r.json()["choices"]) for r in replies}
    assert all(r.status_code == 200 for r in replies)
    assert len(answers) == 1
    assert counts.taken("sleep-1500") == 1
    assert speculative(client, namespace, "used") == 1


def test_a_lookup_abandoned_at_its_deadline_starts_no_call_later(
    gateway_client: Callable[..., TestClient], counts: Counts
) -> None:
    """The exact layer stalls past the budget: the request fails open and asks the
    upstream itself; when the stalled exact read returns, long after, nothing more is
    started (no call nobody would use, no flight nobody lands)."""
    store = FaultyStore(MemoryStore())
    settings = CacheSettings(speculate=True, lookup_budget_ms=50)
    client = gateway_client(cache=SemanticCache(settings, store, HashEmbedder()))
    store.delay_s = 0.4
    namespace = uuid.uuid4().hex[:12]
    reply = ask(client, namespace, QUESTION, "fake-gpt", store=False)
    assert reply.headers["x-vetcache"] == "fail_open"
    time.sleep(0.8)  # the abandoned exact read has returned by now
    assert counts.taken("fake-gpt") == 1
    assert speculative(client, namespace, "used") == 0
    store.delay_s = 0.0
    # The same exact key misses again: it asks the upstream, with no stale flight to follow.
    again = ask(client, namespace, QUESTION, "fake-gpt")
    assert again.headers["x-vetcache"] == "miss" and counts.taken("fake-gpt") == 1
