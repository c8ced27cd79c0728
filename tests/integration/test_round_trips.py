"""Redis round trips per cache hit, counted at the client: an exact hit costs one before the
answer goes out, a semantic hit two (the exact check, then the KNN search, which returns the
entry's fields with it), and the audit bookkeeping after the answer one pipeline.

Real Redis Stack, the bundled embedder, the fake upstream; round trips are counted by
wrapping redis-py's command and pipeline senders (every client in the process goes through
them), so nothing here depends on timing."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from redis.asyncio.client import Pipeline, Redis

from cache.embedder import SentenceTransformerEmbedder
from cache.semantic import SemanticCache
from cache.settings import CacheSettings
from cache.stores.redis import RedisStore

pytestmark = pytest.mark.integration

QUESTION = "How do I reverse a list in Python?"
PARAPHRASE = "How can I reverse a Python list?"


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Each round trip any Redis client sends, as the command names it carried."""
    sent: list[list[str]] = []
    command: Any = Redis.execute_command  # untyped in redis-py
    pipeline: Any = Pipeline._execute_pipeline

    async def one(self: Redis, *args: Any, **options: Any) -> Any:
        sent.append([str(args[0]).upper()])
        return await command(self, *args, **options)

    async def many(self: Pipeline, connection: Any, commands: Any, raise_on_error: bool) -> Any:
        sent.append([str(args[0]).upper() for args, _ in commands])
        return await pipeline(self, connection, commands, raise_on_error)

    monkeypatch.setattr(Redis, "execute_command", one)
    monkeypatch.setattr(Pipeline, "_execute_pipeline", many)
    return sent


@pytest.fixture
def client(
    gateway_client: Callable[..., TestClient], redis_url: str, fake_upstream: str
) -> TestClient:
    settings = CacheSettings(threshold=0.9, lookup_budget_ms=5000, threshold_refresh_s=3600)
    cache = SemanticCache(settings, RedisStore(redis_url), SentenceTransformerEmbedder())
    # Audits on (their ledger on the same Redis) but nothing sampled (a sampled hit adds one
    # XADD), and no periodic refresh during the test: every round trip counted is the
    # request's own.
    return gateway_client(
        cache=cache,
        redis_url=redis_url,
        audit={"enabled": True, "burn_in": 0, "sample_rate": 0.0, "near_miss_rate": 0.0},
        metrics={"refresh_s": 3600},
    )


def ask(client: TestClient, namespace: str, text: str) -> str:
    response = client.post(
        "/v1/chat/completions",
        headers={"x-vetcache-namespace": namespace},
        json={"model": "fake-gpt", "messages": [{"role": "user", "content": text}]},
    )
    assert response.status_code == 200, response.text
    return str(response.headers["x-vetcache"])


def test_round_trips_per_hit(client: TestClient, round_trips: list[list[str]]) -> None:
    namespace = uuid.uuid4().hex[:12]
    assert ask(client, namespace, QUESTION) == "miss"
    for _ in range(100):  # the admission lands in the background
        if ask(client, namespace, QUESTION) == "hit":
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the answer was never admitted")
    assert ask(client, namespace, PARAPHRASE) == "hit"  # scripts loaded, connections open

    # TestClient returns once the response's background task (the audit bookkeeping) ran.
    round_trips.clear()
    assert ask(client, namespace, QUESTION) == "hit"
    exact = list(round_trips)
    round_trips.clear()
    assert ask(client, namespace, PARAPHRASE) == "hit"
    semantic = list(round_trips)

    assert exact[0] == ["EVALSHA"]  # pointer and entry in one script
    assert semantic[:2] == [["EVALSHA"], ["FT.SEARCH"]]  # the search returns the fields
    for after in (exact[1:], semantic[2:]):
        assert len(after) == 1, after  # the served-hit record, lookup count: one pipeline
        assert "INCRBY" in after[0] and "HINCRBY" in after[0]
