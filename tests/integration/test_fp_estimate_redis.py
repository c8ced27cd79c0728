"""The FP estimate through ``/admin/fp-rate`` on a real Redis Stack: an exact repeat served
by the gateway is audited as exact and reported apart; sampled labels are weighted; reviews
correct the judge."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from audit import AuditWorker, build_queue_and_ledger
from audit.judges.contrast import ContrastJudge
from audit.ledgers.base import Ledger
from audit.schema import AuditJob, Verdict, VerdictKind
from audit.settings import AuditSettings
from cache.embedder import HashEmbedder
from cache.semantic import SemanticCache
from cache.settings import CacheSettings
from cache.stores.redis import RedisStore
from proxy.auth import hash_key

pytestmark = pytest.mark.integration

ADMIN = {"authorization": "Bearer sk-admin"}


async def record(
    ledger: Ledger, namespace: str, said: VerdictKind, truth: VerdictKind | None, **extra: Any
) -> None:
    """A judge verdict on a served semantic hit, and a person's review of it if ``truth``."""
    job = AuditJob(
        job_id=uuid.uuid4().hex, request_id=uuid.uuid4().hex, entry_id="e", new_prompt="n",
        cached_prompt="c", cached_answer="a", similarity=0.92, threshold=0.9,
        namespace=namespace, model="fake-gpt", **extra,
    )  # fmt: skip
    now = time.time()
    await ledger.record(
        Verdict(id=job.job_id, job=job, verdict=said, judge="contrast/2", created_at=now)
    )
    if truth is not None:
        await ledger.record(
            Verdict(id=uuid.uuid4().hex, source="review", job=job, verdict=truth,
                    judge="review", created_at=now + 1)
        )  # fmt: skip


async def test_fp_rate_route_reports_exact_apart_weighted_and_corrected(
    gateway_client: Callable[..., TestClient], redis_url: str
) -> None:
    namespace = uuid.uuid4().hex[:12]
    client = gateway_client(
        cache=SemanticCache(CacheSettings(), RedisStore(redis_url), HashEmbedder()),
        redis_url=redis_url,
        admin_key_sha256=hash_key("sk-admin"),
        audit={"burn_in": 3, "sample_rate": 0.0},
    )
    body = {"model": "fake-gpt", "messages": [{"role": "user", "content": "Cancel my order"}]}
    headers = {"x-vetcache-namespace": namespace}
    assert client.post("/v1/chat/completions", headers=headers, json=body).status_code == 200
    deadline = time.monotonic() + 10
    while client.post("/v1/chat/completions", headers=headers, json=body).headers[
        "x-vetcache"
    ] != "hit":  # fmt: skip
        assert time.monotonic() < deadline, "the answer was never admitted"

    queue, ledger = build_queue_and_ledger(AuditSettings(), redis_url)
    store = RedisStore(redis_url)
    await queue.open()
    try:
        worker = AuditWorker("w", queue, ContrastJudge(), ledger, store, AuditSettings())
        while not await ledger.query(namespace=namespace, limit=None):
            assert time.monotonic() < deadline + 20, "the exact repeat was never judged"
            await worker.run_once(block_s=0.2)
        [repeat] = await ledger.query(namespace=namespace, limit=None)
        assert repeat.job.exact and repeat.job.sample_p == 1.0  # burn-in: always audited

        # A judge with sensitivity 0.8 and specificity 0.9, reviewed 20 + 40 times, on
        # sampled hits (p = 0.5) whose judge rate is 24 / 100.
        for said, truth, count in (
            ("false_positive", "false_positive", 16), ("correct", "false_positive", 4),
            ("false_positive", "correct", 4), ("false_positive", None, 4),
            ("correct", "correct", 36), ("correct", None, 36),
        ):  # fmt: skip
            for _ in range(count):
                await record(ledger, namespace, said, truth, sample_p=0.5)  # type: ignore[arg-type]
    finally:
        await queue.close()
        await ledger.close()
        await store.close()

    reply = client.get(f"/admin/fp-rate?namespace={namespace}", headers=ADMIN)
    assert reply.status_code == 200
    rates = reply.json()
    assert rates["exact"]["labelled"] == 1 and rates["exact"]["false_positives"] == 0
    overall = rates["overall"]
    assert overall["labelled"] == 100  # the exact repeat is not among them
    assert overall["effective_n"] == pytest.approx(100)  # equal weights: no loss
    assert rates["judge_error"]["sensitivity"] == pytest.approx(0.8)
    assert rates["judge_error"]["specificity"] == pytest.approx(0.9)
    corrected = overall["corrected"]
    assert corrected["rate"] == pytest.approx(0.2)
    assert corrected["lower"] < 0.2 < corrected["upper"]
    assert rates["namespaces"][namespace]["corrected"] == corrected
