"""``cache.contrast_guard``: the contrast rules veto semantic hits on the request path."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

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
    refused = refusals(client)
    if guard:  # answered fresh, and the header says why the candidate was not served
        assert "Don't cancel my order" in trap.json()["choices"][0]["message"]["content"]
        assert trap.headers["x-vetcache-refused"] == "contrast"
        assert refused == {"contrast": 1.0}
    else:
        assert "x-vetcache-refused" not in trap.headers
        assert refused == {}


def refusals(client: TestClient) -> dict[str, float]:
    """``vetcache_refused_total`` by reason, from ``/metrics``."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "vetcache_refused_total":
                found[sample.labels["reason"]] = sample.value
    return found
