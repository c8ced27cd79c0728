"""Shadow mode: lookups and audits run, the upstream always answers, and metrics and the
FP-rate API say what the cache would have done (bundled embedder, in-process audits)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cache.embedder import SentenceTransformerEmbedder
from cache.semantic import SemanticCache
from cache.settings import CacheSettings
from cache.stores.memory import MemoryStore
from proxy.auth import hash_key
from tests.integration.test_metrics import scrape, value, wait

pytestmark = pytest.mark.integration

# TestClient answers with its own HTTP library's Response type (httpx or its successor).
Reply = Any
ADMIN = {"authorization": "Bearer sk-admin"}


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


def ask(client: TestClient, namespace: str, text: str) -> Reply:
    body = {"model": "fake-gpt", "messages": [{"role": "user", "content": text}]}
    return client.post(
        "/v1/chat/completions", json=body, headers={"x-vetcache-namespace": namespace}
    )


def judged(client: TestClient) -> list[dict[str, Any]]:
    return list(client.get("/admin/verdicts", headers=ADMIN).json()["data"])


def assert_upstream_answers_would_be_hits(client: TestClient, shadowed: str) -> None:
    """A paraphrase and a negation in the shadowed namespace: the upstream answers each,
    and the headers say the cache would have served it."""
    for text in ("Cancel my subscription, please", "Don't cancel my subscription"):
        reply = ask(client, shadowed, text)
        assert reply.headers["x-vetcache"] == "miss"  # the upstream answered...
        assert text in reply.json()["choices"][0]["message"]["content"]
        assert reply.headers["x-vetcache-shadow"] == "hit"  # ...though the cache would have
        assert float(reply.headers["x-vetcache-similarity"]) > 0.5
        assert "x-vetcache-entry" in reply.headers


def assert_rates_kept_apart(client: TestClient, shadowed: str, live: str) -> None:
    """The shadowed namespace's verdicts count in ``shadow``, not in its FP rate."""
    rate = client.get("/admin/fp-rate", headers=ADMIN).json()
    assert shadowed not in rate["namespaces"] or rate["namespaces"][shadowed]["labelled"] == 0
    assert rate["shadow"][shadowed]["false_positives"] == 1
    assert rate["shadow"][shadowed]["labelled"] == 2
    assert rate["namespaces"][live]["labelled"] == 1  # the live namespace counts as before


def assert_metrics_report_would_be_hits(client: TestClient, shadowed: str) -> None:
    m = scrape(client.get("/metrics").text)
    assert value(m, "vetcache_shadow_lookups_total", namespace=shadowed, outcome="would_hit") == 2
    assert value(m, "vetcache_shadow_lookups_total", namespace=shadowed, outcome="would_miss") == 1
    assert (
        value(m, "vetcache_requests_total", namespace=shadowed, model="fake-gpt", outcome="hit")
        == 0
    )
    fp = {
        "namespace": shadowed,
        "verdict": "false_positive",
        "judge": "contrast/2",
        "kind": "shadow",
    }
    assert value(m, "vetcache_audit_verdicts_total", **fp) == 1


def test_shadow_namespace_answers_upstream_and_reports_would_be_hits(
    gateway_client: Callable[..., TestClient], embedder: SentenceTransformerEmbedder
) -> None:
    shadowed, live = f"s{uuid.uuid4().hex[:8]}", f"l{uuid.uuid4().hex[:8]}"
    store = MemoryStore()
    settings = CacheSettings(threshold=0.5, lookup_budget_ms=5000, shadow_namespaces={shadowed})
    client = gateway_client(
        cache=SemanticCache(settings, store, embedder),
        audit={"burn_in": 10, "sample_rate": 1.0, "near_miss_rate": 0.0},
        admin_key_sha256=hash_key("sk-admin"),
    )
    for namespace in (shadowed, live):
        assert ask(client, namespace, "Cancel my subscription").headers["x-vetcache"] == "miss"
    wait(lambda: len(store._entries) == 2, "the first answers were never admitted")

    entry_count = len(store._entries)
    assert_upstream_answers_would_be_hits(client, shadowed)
    served = ask(client, live, "Cancel my subscription, please")
    assert served.headers["x-vetcache"] == "hit" and "x-vetcache-shadow" not in served.headers

    wait(lambda: len(judged(client)) == 3, "the would-be hits and the live hit were never judged")
    time.sleep(0.2)
    assert len(store._entries) == entry_count  # a would-be hit does not store a near-copy
    shadow_jobs = [v for v in judged(client) if v["job"]["shadow"]]
    assert sorted(v["verdict"] for v in shadow_jobs) == ["correct", "false_positive"]
    assert_rates_kept_apart(client, shadowed, live)
    assert_metrics_report_would_be_hits(client, shadowed)

    # No feedback on an answer the cache did not give.
    [bad] = [v for v in shadow_jobs if v["verdict"] == "false_positive"]
    feedback = client.post(
        "/v1/feedback", json={"request_id": bad["job"]["request_id"], "correct": False}
    )
    assert feedback.status_code == 400
    assert feedback.json()["error"]["code"] == "not_served_from_cache"
