"""``cache.contrast_guard``: the contrast rules veto semantic hits on the request path."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cache.embedder import HashEmbedder
from cache.semantic import SemanticCache
from cache.settings import CacheSettings
from cache.stores.memory import MemoryStore

pytestmark = pytest.mark.integration


def gateway(gateway_client: Callable[..., TestClient], guard: bool) -> TestClient:
    # Threshold -1 with a meaningless embedder: every entry of the scope is a semantic hit,
    # so only the guard can refuse one.
    settings = CacheSettings(threshold=-1.0, contrast_guard=guard, lookup_budget_ms=2000)
    return gateway_client(cache=SemanticCache(settings, MemoryStore(), HashEmbedder()))


def ask(client: TestClient, text: str) -> Any:
    body = {"model": "fake-gpt", "messages": [{"role": "user", "content": text}]}
    return client.post("/v1/chat/completions", json=body)


@pytest.mark.parametrize("guard", [False, True])
def test_guard_turns_a_contradicting_hit_into_a_miss(
    gateway_client: Callable[..., TestClient], guard: bool
) -> None:
    client = gateway(gateway_client, guard)
    assert ask(client, "Cancel my order").headers["x-vetcache"] == "miss"
    deadline = time.monotonic() + 5
    while ask(client, "Cancel my order please").headers["x-vetcache"] != "hit":
        assert time.monotonic() < deadline, "never admitted"
        time.sleep(0.05)
    trap = ask(client, "Don't cancel my order")
    assert trap.headers["x-vetcache"] == ("miss" if guard else "hit")
    if guard:
        assert "Don't cancel my order" in trap.json()["choices"][0]["message"]["content"]
