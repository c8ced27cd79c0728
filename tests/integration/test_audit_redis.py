"""The audit path on a real Redis Stack: the stream's consumer group, a worker that dies,
and a false hit through the gateway that ends judged, acted on and not served again."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from audit import AuditWorker, build_queue_and_ledger
from audit.judges.contrast import ContrastJudge
from audit.judges.llm import LLMJudge, LLMJudgeSettings
from audit.ledgers.base import Ledger, Served
from audit.queues.base import JobQueue
from audit.schema import AuditJob, Verdict
from audit.settings import AuditSettings
from cache.embedder import SentenceTransformerEmbedder
from cache.semantic import SemanticCache
from cache.settings import CacheSettings
from cache.stores.redis import RedisStore
from proxy.auth import hash_key
from tests.conftest import free_port, route

pytestmark = pytest.mark.integration

# TestClient answers with its own HTTP library's Response type (httpx or its successor).
Reply = Any


def job(namespace: str, **extra: Any) -> AuditJob:
    values: dict[str, Any] = {
        "job_id": uuid.uuid4().hex, "request_id": uuid.uuid4().hex, "entry_id": "none",
        "new_prompt": "Don't cancel my plan", "cached_prompt": "Cancel my plan",
        "cached_answer": "Done.", "similarity": 0.92, "threshold": 0.9, "namespace": namespace,
        "model": "m", "scope": "nowhere",
    }  # fmt: skip
    values.update(extra)
    return AuditJob(**values)


@asynccontextmanager
async def audit_backend(
    settings: AuditSettings, redis_url: str
) -> AsyncIterator[tuple[JobQueue, Ledger, RedisStore]]:
    """The audit queue (open), ledger and store on Redis; all closed at the end."""
    queue, ledger = build_queue_and_ledger(settings, redis_url)
    store = RedisStore(redis_url)
    await queue.open()
    try:
        yield queue, ledger, store
    finally:
        await queue.close()
        await ledger.close()
        await store.close()


@pytest.fixture
async def stream(redis_url: str) -> AsyncIterator[tuple[JobQueue, Ledger, RedisStore]]:
    async with audit_backend(AuditSettings(reclaim_after_s=0.5), redis_url) as backend:
        yield backend


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


ADMIN = {"authorization": "Bearer sk-admin"}
TWO_TENANTS = {
    "api_keys": [
        {"tenant": "t", "key_sha256": hash_key("sk-t")},
        {"tenant": "other", "key_sha256": hash_key("sk-other")},
    ]
}


def asker(client: TestClient, headers: dict[str, str]) -> Callable[[str], Reply]:
    """Ask ``client`` one question with ``headers``."""

    def ask(text: str) -> Reply:
        body = {"model": "fake-gpt", "messages": [{"role": "user", "content": text}]}
        return client.post("/v1/chat/completions", headers=headers, json=body)

    return ask


async def until_admitted(ask: Callable[[str], Reply]) -> Reply:
    """Ask "Cancel my subscription" (a miss), then a paraphrase until the cache serves it;
    that hit."""
    assert ask("Cancel my subscription").headers["x-vetcache"] == "miss"
    deadline = time.monotonic() + 10
    while (good := ask("Cancel my subscription, please")).headers["x-vetcache"] != "hit":
        assert time.monotonic() < deadline, "the first answer was never admitted"
        await asyncio.sleep(0.05)
    return good


async def judge_until(worker: AuditWorker, ledger: Ledger, namespace: str, count: int,
                      within_s: float) -> None:  # fmt: skip
    """Run ``worker`` until ``namespace`` has ``count`` verdicts."""
    deadline = time.monotonic() + within_s
    while len(await ledger.query(namespace=namespace, limit=None)) < count:
        assert time.monotonic() < deadline, "the hits were never judged"
        await worker.run_once(block_s=0.2)


async def judge_the_two_hits(redis_url: str, namespace: str) -> dict[str, Verdict]:
    """A contrast-judge worker's verdicts on the two hits in ``namespace``, by new prompt."""
    async with audit_backend(AuditSettings(), redis_url) as (queue, ledger, store):
        worker = AuditWorker("test-worker", queue, ContrastJudge(), ledger, store, AuditSettings())
        await judge_until(worker, ledger, namespace, 2, within_s=10)
        return {v.job.new_prompt: v for v in await ledger.query(namespace=namespace)}


def assert_judged_false(verdicts: dict[str, Verdict], false_hit: Reply, good: Reply) -> Verdict:
    """The negation's hit is a false positive about the entry it was served from, the
    paraphrase's (from the same entry) correct; the false positive's verdict."""
    bad = verdicts["Don't cancel my subscription"]
    assert bad.verdict == "false_positive" and "negation" in bad.reason
    assert bad.job.request_id == false_hit.headers["x-request-id"]
    assert bad.job.entry_id == false_hit.headers["x-vetcache-entry"]
    assert bad.job.cached_prompt == "Cancel my subscription"
    assert "Cancel my subscription" in bad.job.cached_answer
    assert bad.job.similarity == pytest.approx(
        float(false_hit.headers["x-vetcache-similarity"]), abs=1e-4
    )
    assert bad.job.threshold == 0.5 and bad.job.embedder and bad.judge == "contrast/2"
    assert verdicts["Cancel my subscription, please"].verdict == "correct"
    assert good.headers["x-vetcache-entry"] == bad.job.entry_id
    return bad


def assert_counted_as_a_false_positive(client: TestClient, namespace: str) -> None:
    """Listed as a false positive, counted in the FP rate, exported as a hard negative."""
    listed = client.get(
        f"/admin/verdicts?namespace={namespace}&verdict=false_positive", headers=ADMIN
    )
    assert [v["job"]["new_prompt"] for v in listed.json()["data"]] == [
        "Don't cancel my subscription"
    ]
    rate = client.get(f"/admin/fp-rate?namespace={namespace}", headers=ADMIN).json()
    assert rate["namespaces"][namespace]["false_positives"] == 1
    assert rate["namespaces"][namespace]["labelled"] == 2

    hard = client.get(f"/admin/hard-negatives?namespace={namespace}", headers=ADMIN).json()
    assert [(p["cached_prompt"], p["new_prompt"], p["source"]) for p in hard["data"]] == [
        ("Cancel my subscription", "Don't cancel my subscription", "judge")
    ]


def assert_overturned_by_review(client: TestClient, namespace: str, verdict_id: str) -> None:
    review = client.post(
        f"/admin/verdicts/{verdict_id}/review", headers=ADMIN, json={"correct": True}
    )
    assert review.status_code == 200 and review.json()["source"] == "review"
    rate = client.get(f"/admin/fp-rate?namespace={namespace}", headers=ADMIN).json()
    assert rate["namespaces"][namespace]["false_positives"] == 0  # the person overruled it
    hard = client.get(f"/admin/hard-negatives?namespace={namespace}", headers=ADMIN).json()
    assert hard["data"] == []  # ...and the pair is no longer a hard negative


def assert_feedback_from_its_own_key_only(
    client: TestClient, namespace: str, request_id: str
) -> None:
    """The key that made request ``request_id`` labels it wrong: a hard negative; another
    key may not label it, and an unknown request id is refused."""
    feedback = client.post(
        "/v1/feedback",
        headers={"authorization": "Bearer sk-t"},
        json={"request_id": request_id, "correct": False, "comment": "wrong"},
    )
    assert feedback.status_code == 200 and feedback.json()["source"] == "feedback"
    stranger = client.post(
        "/v1/feedback",
        headers={"authorization": "Bearer sk-other"},
        json={"request_id": request_id, "correct": True},
    )
    # Only the key that made the request may label it: another's id names nothing of its own.
    assert stranger.status_code == 400 and stranger.json()["error"]["code"] == "unknown_request"
    rows = client.get(
        f"/admin/hard-negatives?namespace={namespace}&format=jsonl", headers=ADMIN
    ).text.splitlines()
    assert [orjson.loads(r)["text_b"] for r in rows] == ["Cancel my subscription, please"]
    assert orjson.loads(rows[0])["label"] == 0 and orjson.loads(rows[0])["category"] == namespace
    unknown = client.post(
        "/v1/feedback",
        headers={"authorization": "Bearer sk-t"},
        json={"request_id": "nope", "correct": True},
    )
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "request_id"


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
        auth=TWO_TENANTS,
    )
    ask = asker(client, {"authorization": "Bearer sk-t", "x-vetcache-namespace": namespace})
    good = await until_admitted(ask)
    assert "x-vetcache-refused" not in good.headers
    false_hit = ask("Don't cancel my subscription")
    assert false_hit.headers["x-vetcache"] == "hit"  # threshold 0.5: similarity lets it through

    verdicts = await judge_the_two_hits(redis_url, namespace)
    bad = assert_judged_false(verdicts, false_hit, good)

    again = ask("Don't cancel my subscription")
    assert again.headers["x-vetcache"] == "miss"  # its nearest labelled neighbour is false
    assert again.headers["x-vetcache-refused"] == "neighbourhood"
    still = ask("Cancel my subscription, please")
    assert still.headers["x-vetcache"] == "hit"  # still served
    assert "x-vetcache-refused" not in still.headers

    assert_counted_as_a_false_positive(client, namespace)
    assert_overturned_by_review(client, namespace, bad.id)
    assert_feedback_from_its_own_key_only(client, namespace, good.headers["x-request-id"])


def fp_rate(client: TestClient, namespace: str) -> dict[str, Any]:
    """``/admin/fp-rate``'s numbers for ``namespace``."""
    rate = client.get(f"/admin/fp-rate?namespace={namespace}", headers=ADMIN).json()
    numbers: dict[str, Any] = rate["namespaces"][namespace]
    return numbers


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
    ask = asker(client, {"x-vetcache-namespace": namespace})
    await until_admitted(ask)
    assert ask("Don't cancel my subscription").headers["x-vetcache"] == "hit"

    settings = AuditSettings(action="none")  # keep serving, so the second round also hits
    down = LLMJudge(
        LLMJudgeSettings(model="openai/judge-0.9", api_base=f"http://127.0.0.1:{free_port()}/v1",
                         timeout=2)
    )  # fmt: skip
    async with audit_backend(AuditSettings(), redis_url) as (queue, ledger, store):
        try:
            contrast = AuditWorker("contrast", queue, ContrastJudge(), ledger, store, settings)
            await judge_until(contrast, ledger, namespace, 2, within_s=30)
            before = fp_rate(client, namespace)
            assert before["false_positives"] == 1
            assert before["labelled"] == 2

            # The judge's endpoint is down from here on: two more false hits, one more correct one.
            assert ask("Don't cancel my subscription").headers["x-vetcache"] == "hit"
            assert ask("Do not cancel my subscription").headers["x-vetcache"] == "hit"
            assert ask("Cancel my subscription, please").headers["x-vetcache"] == "hit"
            llm = AuditWorker("llm", queue, down, ledger, store, settings)
            await judge_until(llm, ledger, namespace, 5, within_s=30)
        finally:
            await down.aclose()

    errors = client.get(
        f"/admin/verdicts?namespace={namespace}&verdict=error", headers=ADMIN
    ).json()["data"]
    assert len(errors) == 3 and all(v["judge"].startswith("llm/") for v in errors)
    assert fp_rate(client, namespace) == before


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
