"""A person's label wins both ways, through the gateway on real Redis: a review saying a
judged-false hit was fine lifts the quarantine the false verdict set, and the entry serves
again."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from audit import AuditWorker
from audit.judges.contrast import ContrastJudge
from audit.settings import AuditSettings
from cache.embedder import SentenceTransformerEmbedder
from tests.integration.test_audit_redis import (
    ADMIN,
    TWO_TENANTS,
    asker,
    audit_backend,
    judge_until,
    redis_gateway,
    until_admitted,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


async def test_a_persons_correct_lifts_the_quarantine_of_a_judged_false_hit(
    gateway_client: Callable[..., TestClient],
    embedder: SentenceTransformerEmbedder,
    fake_upstream: str,
    redis_url: str,
) -> None:
    namespace = uuid.uuid4().hex[:12]
    audit = {"burn_in": 5, "sample_rate": 0.0, "action": "quarantine"}
    client = redis_gateway(
        gateway_client, embedder, fake_upstream, redis_url, audit=audit, auth=TWO_TENANTS
    )
    headers = {"authorization": "Bearer sk-t", "x-vetcache-namespace": namespace}
    ask = asker(client, headers)
    # Probes admit nothing, so the only entry that can serve them is the judged one.
    probe = asker(client, {**headers, "cache-control": "no-store"})
    await until_admitted(ask)
    assert ask("Don't cancel my subscription").headers["x-vetcache"] == "hit"  # threshold 0.5
    settings = AuditSettings(action="quarantine")
    async with audit_backend(settings, redis_url) as (queue, ledger, store):
        worker = AuditWorker("test-worker", queue, ContrastJudge(), ledger, store, settings)
        await judge_until(worker, ledger, namespace, 2, within_s=10)
        [bad] = await ledger.query(namespace=namespace, verdict="false_positive")
    quarantined = probe("Cancel my subscription, please")
    assert quarantined.headers["x-vetcache"] == "miss"
    assert quarantined.headers["x-vetcache-refused"] == "quarantined"

    review = client.post(f"/admin/verdicts/{bad.id}/review", headers=ADMIN, json={"correct": True})
    assert review.status_code == 200 and review.json()["source"] == "review"
    served = probe("Cancel my subscription, please")
    assert served.headers["x-vetcache"] == "hit"  # the person's label lifted the quarantine
    assert served.headers["x-vetcache-entry"] == bad.job.entry_id
    assert "x-vetcache-refused" not in served.headers
