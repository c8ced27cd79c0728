"""The audit path on a real Redis Stack: the stream's consumer group, a worker that dies,
and a false hit through the gateway that ends judged, acted on and not served again."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from audit import AuditWorker, build_queue_and_ledger
from audit.judges.contrast import ContrastJudge
from audit.judges.llm import LLMJudge, LLMJudgeSettings
from audit.ledgers.base import Ledger, Served
from audit.queues.base import JobQueue
from audit.schema import AuditJob
from audit.settings import AuditSettings
from cache.embedder import SentenceTransformerEmbedder
from cache.semantic import SemanticCache
from cache.settings import CacheSettings
from cache.stores.redis import RedisStore
from proxy.auth import hash_key
from tests.conftest import free_port, route

pytestmark = pytest.mark.integration


def job(namespace: str, **extra: Any) -> AuditJob:
    values: dict[str, Any] = {
        "job_id": uuid.uuid4().hex, "request_id": uuid.uuid4().hex, "entry_id": "none",
        "new_prompt": "Don't cancel my plan", "cached_prompt": "Cancel my plan",
        "cached_answer": "Done.", "similarity": 0.92, "threshold": 0.9, "namespace": namespace,
        "model": "m", "scope": "nowhere",
    }  # fmt: skip
    values.update(extra)
    return AuditJob(**values)


@pytest.fixture
async def stream(redis_url: str) -> AsyncIterator[tuple[JobQueue, Ledger, RedisStore]]:
    settings = AuditSettings(reclaim_after_s=0.5)
    queue, ledger = build_queue_and_ledger(settings, redis_url)
    store = RedisStore(redis_url)
    await queue.open()
    try:
        yield queue, ledger, store
    finally:
        await queue.close()
        await ledger.close()
        await store.close()


async def test_jobs_of_a_dead_worker_are_reclaimed_and_judged_once(
    stream: tuple[JobQueue, Ledger, RedisStore],
) -> None:
    queue, ledger, store = stream
    namespace = uuid.uuid4().hex
    settings = AuditSettings(reclaim_after_s=0.5, worker_batch=50)
    for _ in range(5):
        await queue.put(job(namespace))
    dead = await queue.take("doomed-worker", 50, 1.0)  # takes its share, then "dies"
    assert dead, "the first worker got jobs"
    survivor = AuditWorker("survivor", queue, ContrastJudge(), ledger, store, settings)
    deadline = time.monotonic() + 10
    while len(await ledger.query(namespace=namespace, limit=None)) < 5:
        assert time.monotonic() < deadline, "jobs were lost"
        await survivor.run_once(block_s=0.2)
    verdicts = await ledger.query(namespace=namespace, limit=None)
    assert len(verdicts) == 5 and {v.verdict for v in verdicts} == {"false_positive"}
    # The dead worker's deliveries, if they arrive late, are dropped by the ledger.
    late = AuditWorker("zombie", queue, ContrastJudge(), ledger, store, settings)
    for delivery in dead:
        await late.process(delivery)
    assert len(await ledger.query(namespace=namespace, limit=None)) == 5


async def test_stream_outlives_its_producer(
    stream: tuple[JobQueue, Ledger, RedisStore], redis_url: str
) -> None:
    queue, ledger, store = stream
    namespace = uuid.uuid4().hex
    await queue.put(job(namespace))
    await queue.close()  # the gateway that queued it restarts
    reopened, _ = build_queue_and_ledger(AuditSettings(), redis_url)
    await reopened.open()
    try:
        worker = AuditWorker(
            "after-restart", reopened, ContrastJudge(), ledger, store, AuditSettings()
        )
        deadline = time.monotonic() + 10
        while not await ledger.query(namespace=namespace):
            assert time.monotonic() < deadline
            await worker.run_once(block_s=0.2)
    finally:
        await reopened.close()


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


def redis_gateway(
    gateway_client: Callable[..., TestClient],
    embedder: SentenceTransformerEmbedder,
    fake_upstream: str,
    redis_url: str,
    **overrides: Any,
) -> TestClient:
    """A gateway whose cache, audit jobs and verdicts are on Redis (no in-process worker:
    the tests run their own), with a threshold low enough for a negation to hit."""
    return gateway_client(
        cache=SemanticCache(
            CacheSettings(threshold=0.5, lookup_budget_ms=2000), RedisStore(redis_url), embedder
        ),
        redis_url=redis_url,
        admin_key_sha256=hash_key("sk-admin"),
        model_list=[route("fake-gpt", "fake-gpt", fake_upstream)],
        **overrides,
    )


async def test_false_hit_is_judged_acted_on_and_not_served_again(
    gateway_client: Callable[..., TestClient],
    embedder: SentenceTransformerEmbedder,
    fake_upstream: str,
    redis_url: str,
) -> None:
    namespace = uuid.uuid4().hex[:12]
    client = redis_gateway(
        gateway_client,
        embedder,
        fake_upstream,
        redis_url,
        audit={"burn_in": 5, "sample_rate": 0.0},
        auth={
            "api_keys": [
                {"tenant": "t", "key_sha256": hash_key("sk-t")},
                {"tenant": "other", "key_sha256": hash_key("sk-other")},
            ]
        },
    )
    headers = {"authorization": "Bearer sk-t", "x-vetcache-namespace": namespace}

    def ask(text: str) -> Any:
        body = {"model": "fake-gpt", "messages": [{"role": "user", "content": text}]}
        return client.post("/v1/chat/completions", headers=headers, json=body)

    assert ask("Cancel my subscription").headers["x-vetcache"] == "miss"
    deadline = time.monotonic() + 10
    while (good := ask("Cancel my subscription, please")).headers["x-vetcache"] != "hit":
        assert time.monotonic() < deadline, "the first answer was never admitted"
        await asyncio.sleep(0.05)
    false_hit = ask("Don't cancel my subscription")
    assert false_hit.headers["x-vetcache"] == "hit"  # threshold 0.5: similarity lets it through

    queue, ledger = build_queue_and_ledger(AuditSettings(), redis_url)
    store = RedisStore(redis_url)
    await queue.open()
    worker = AuditWorker("test-worker", queue, ContrastJudge(), ledger, store, AuditSettings())
    try:
        deadline = time.monotonic() + 10
        while len(await ledger.query(namespace=namespace, limit=None)) < 2:
            assert time.monotonic() < deadline, "the hits were never judged"
            await worker.run_once(block_s=0.2)
        verdicts = {v.job.new_prompt: v for v in await ledger.query(namespace=namespace)}
        bad = verdicts["Don't cancel my subscription"]
        assert bad.verdict == "false_positive" and "negation" in bad.reason
        assert bad.job.request_id == false_hit.headers["x-request-id"]
        assert bad.job.entry_id == false_hit.headers["x-vetcache-entry"]
        assert bad.job.cached_prompt == "Cancel my subscription"
        assert "Cancel my subscription" in bad.job.cached_answer
        assert bad.job.similarity == pytest.approx(
            float(false_hit.headers["x-vetcache-similarity"]), abs=1e-4
        )
        assert bad.job.threshold == 0.5 and bad.job.embedder and bad.judge == "contrast/1"
        assert verdicts["Cancel my subscription, please"].verdict == "correct"
        assert good.headers["x-vetcache-entry"] == bad.job.entry_id
    finally:
        await queue.close()
        await ledger.close()
        await store.close()

    again = ask("Don't cancel my subscription")
    assert again.headers["x-vetcache"] == "miss"  # the entry's own bar is now above it
    assert ask("Cancel my subscription, please").headers["x-vetcache"] == "hit"  # still served

    admin = {"authorization": "Bearer sk-admin"}
    listed = client.get(
        f"/admin/verdicts?namespace={namespace}&verdict=false_positive", headers=admin
    )
    assert [v["job"]["new_prompt"] for v in listed.json()["data"]] == [
        "Don't cancel my subscription"
    ]
    rate = client.get(f"/admin/fp-rate?namespace={namespace}", headers=admin).json()
    assert rate["namespaces"][namespace]["false_positives"] == 1
    assert rate["namespaces"][namespace]["labelled"] == 2

    hard = client.get(f"/admin/hard-negatives?namespace={namespace}", headers=admin).json()
    assert [(p["cached_prompt"], p["new_prompt"], p["source"]) for p in hard["data"]] == [
        ("Cancel my subscription", "Don't cancel my subscription", "judge")
    ]

    review = client.post(f"/admin/verdicts/{bad.id}/review", headers=admin, json={"correct": True})
    assert review.status_code == 200 and review.json()["source"] == "review"
    rate = client.get(f"/admin/fp-rate?namespace={namespace}", headers=admin).json()
    assert rate["namespaces"][namespace]["false_positives"] == 0  # the person overruled it
    hard = client.get(f"/admin/hard-negatives?namespace={namespace}", headers=admin).json()
    assert hard["data"] == []  # ...and the pair is no longer a hard negative

    feedback = client.post(
        "/v1/feedback",
        headers={"authorization": "Bearer sk-t"},
        json={"request_id": good.headers["x-request-id"], "correct": False, "comment": "wrong"},
    )
    assert feedback.status_code == 200 and feedback.json()["source"] == "feedback"
    stranger = client.post(
        "/v1/feedback",
        headers={"authorization": "Bearer sk-other"},
        json={"request_id": good.headers["x-request-id"], "correct": True},
    )
    assert stranger.status_code == 403  # only the key that made the request may label it
    rows = client.get(
        f"/admin/hard-negatives?namespace={namespace}&format=jsonl", headers=admin
    ).text.splitlines()
    assert [orjson.loads(r)["text_b"] for r in rows] == ["Cancel my subscription, please"]
    assert orjson.loads(rows[0])["label"] == 0 and orjson.loads(rows[0])["category"] == namespace
    unknown = client.post(
        "/v1/feedback",
        headers={"authorization": "Bearer sk-t"},
        json={"request_id": "nope", "correct": True},
    )
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "request_id"


async def test_judge_endpoint_down_gives_error_verdicts_and_leaves_the_fp_rate_alone(
    gateway_client: Callable[..., TestClient],
    embedder: SentenceTransformerEmbedder,
    fake_upstream: str,
    redis_url: str,
) -> None:
    namespace = uuid.uuid4().hex[:12]
    client = redis_gateway(
        gateway_client,
        embedder,
        fake_upstream,
        redis_url,
        audit={"burn_in": 10, "sample_rate": 0.0},
    )
    admin = {"authorization": "Bearer sk-admin"}

    def ask(text: str) -> str:
        body = {"model": "fake-gpt", "messages": [{"role": "user", "content": text}]}
        reply = client.post(
            "/v1/chat/completions", headers={"x-vetcache-namespace": namespace}, json=body
        )
        return str(reply.headers["x-vetcache"])

    assert ask("Cancel my subscription") == "miss"
    deadline = time.monotonic() + 10
    while ask("Cancel my subscription, please") != "hit":
        assert time.monotonic() < deadline, "the first answer was never admitted"
        await asyncio.sleep(0.05)
    assert ask("Don't cancel my subscription") == "hit"

    queue, ledger = build_queue_and_ledger(AuditSettings(), redis_url)
    store = RedisStore(redis_url)
    await queue.open()
    settings = AuditSettings(action="none")  # keep serving, so the second round also hits

    async def drain(worker: AuditWorker, count: int) -> None:
        deadline = time.monotonic() + 30
        while len(await ledger.query(namespace=namespace, limit=None)) < count:
            assert time.monotonic() < deadline, "the hits were never judged"
            await worker.run_once(block_s=0.2)

    down = LLMJudge(
        LLMJudgeSettings(model="openai/judge-0.9", api_base=f"http://127.0.0.1:{free_port()}/v1",
                         timeout=2)
    )  # fmt: skip
    try:
        await drain(AuditWorker("contrast", queue, ContrastJudge(), ledger, store, settings), 2)
        before = client.get(f"/admin/fp-rate?namespace={namespace}", headers=admin).json()
        assert before["namespaces"][namespace]["false_positives"] == 1
        assert before["namespaces"][namespace]["labelled"] == 2

        # The judge's endpoint is down from here on: two more false hits, one more correct one.
        assert ask("Don't cancel my subscription") == "hit"
        assert ask("Do not cancel my subscription") == "hit"
        assert ask("Cancel my subscription, please") == "hit"
        await drain(AuditWorker("llm", queue, down, ledger, store, settings), 5)
    finally:
        await down.aclose()
        await queue.close()
        await ledger.close()
        await store.close()

    errors = client.get(
        f"/admin/verdicts?namespace={namespace}&verdict=error", headers=admin
    ).json()["data"]
    assert len(errors) == 3 and all(v["judge"].startswith("llm/") for v in errors)
    after = client.get(f"/admin/fp-rate?namespace={namespace}", headers=admin).json()
    assert after["namespaces"][namespace] == before["namespaces"][namespace]


async def test_one_owner_leads_at_a_time(redis_url: str) -> None:
    _, ledger = build_queue_and_ledger(AuditSettings(), redis_url)
    role = f"test-{uuid.uuid4().hex}"
    try:
        assert await ledger.lead(role, "a", 1)
        assert not await ledger.lead(role, "b", 1)  # a holds it
        assert await ledger.lead(role, "a", 1)  # a renews
        await asyncio.sleep(1.2)
        assert await ledger.lead(role, "b", 1)  # a's lease ran out
    finally:
        await ledger.close()


async def test_a_served_hit_is_remembered_counted_and_binned_in_one_step(redis_url: str) -> None:
    _, ledger = build_queue_and_ledger(AuditSettings(), redis_url)
    namespace = uuid.uuid4().hex
    try:
        seen = [
            await ledger.remember(
                Served(job=job(namespace, entry_id=f"e-{namespace}", similarity=0.931), key_id="k"),
                ttl_s=60,
            )
            for _ in range(2)
        ]
        await ledger.count_lookup(namespace, 40)  # a miss
        assert seen == [1, 2]
        assert await ledger.lookup_bins(namespace, hours=1) == {93: 2, 40: 1}
    finally:
        await ledger.close()
