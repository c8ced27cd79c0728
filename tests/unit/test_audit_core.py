"""Sampler, Wilson interval, FP rate, ledger and worker on in-process parts."""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import numpy as np
import pytest

from audit.actions import act_on
from audit.auditor import Auditor
from audit.errors import QueueError
from audit.judges.contrast import ContrastJudge
from audit.ledgers.base import Served
from audit.ledgers.memory import MemoryLedger
from audit.queues.memory import MemoryQueue
from audit.sampler import Sampler
from audit.schema import AuditJob, Verdict
from audit.settings import AuditSettings
from audit.stats import fp_rate, wilson
from audit.worker import AuditWorker
from cache.schema import CacheEntry, CacheKey, Candidate, Lookup, Outcome
from cache.stores.memory import MemoryStore


def job(
    cached: str = "Cancel my order", new: str = "Don't cancel my order", **extra: Any
) -> AuditJob:
    values: dict[str, Any] = {
        "job_id": uuid.uuid4().hex, "request_id": "r1", "entry_id": "e1", "new_prompt": new,
        "cached_prompt": cached, "cached_answer": "Cancelled.", "similarity": 0.93,
        "threshold": 0.9, "namespace": "shop", "model": "m", "scope": "s1",
    }  # fmt: skip
    values.update(extra)
    return AuditJob(**values)


def test_burn_in_then_rate() -> None:
    sampler = Sampler(AuditSettings(burn_in=3, sample_rate=0.0), random.Random(1))
    assert [sampler.hit("ns", seen) for seen in range(1, 6)] == [True, True, True, False, False]
    always = Sampler(AuditSettings(burn_in=0, sample_rate=1.0, namespace_sample_rates={"q": 0.0}))
    assert always.hit("ns", 1) and not always.hit("q", 1)


async def test_burn_in_count_is_the_ledgers_so_replicas_share_it() -> None:
    ledger = MemoryLedger()
    sampler_a, sampler_b = (
        Sampler(AuditSettings(burn_in=3, sample_rate=0.0), random.Random(1)) for _ in range(2)
    )
    sampled = []
    for replica in [sampler_a, sampler_b, sampler_a, sampler_b, sampler_a]:
        seen = await ledger.remember(Served(job=job(entry_id="e9"), key_id=None), ttl_s=60)
        sampled.append(replica.hit("ns", seen))
    assert sampled == [True, True, True, False, False]  # three in all, not three per replica
    assert await ledger.lookup_bins("shop", hours=1) == {93: 5}  # each served hit's lookup


def test_near_miss_band() -> None:
    sampler = Sampler(AuditSettings(near_miss_band=0.05, near_miss_rate=1.0))
    assert sampler.near_miss(0.87, 0.9)
    assert not sampler.near_miss(0.84, 0.9)  # too far under
    assert not sampler.near_miss(0.91, 0.9)  # that was a hit


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [(0, 10, 0.0, 0.2775), (5, 10, 0.2366, 0.7634), (1, 100, 0.0018, 0.0545), (0, 0, 0.0, 1.0)],
)
def test_wilson_matches_published_values(k: int, n: int, low: float, high: float) -> None:
    assert wilson(k, n) == pytest.approx((low, high), abs=5e-4)


def verdict(
    kind: str, source: str = "judge", the_job: AuditJob | None = None, at: float = 0
) -> Verdict:
    the_job = the_job or job()
    return Verdict(
        id=uuid.uuid4().hex,
        source=source,
        job=the_job,
        verdict=kind,
        created_at=at or time.time(),
    )


def test_fp_rate_counts_served_labels_and_lets_people_overrule() -> None:
    overturned = job()
    verdicts = [
        verdict("false_positive"),
        verdict("correct"),
        verdict("correct"),
        verdict("uncertain"),
        verdict("error"),
        verdict("false_positive", the_job=job(near_miss=True)),  # not served: not counted
        verdict("false_positive", the_job=overturned, at=1.0),
        verdict("correct", source="review", the_job=overturned, at=2.0),
    ]
    rate = fp_rate(verdicts)
    assert (rate.false_positives, rate.labelled) == (1, 4)
    assert rate.rate == 0.25
    assert rate.lower < 0.25 < rate.upper


async def test_ledger_keeps_one_judge_verdict_per_job() -> None:
    ledger = MemoryLedger(retention=3)
    same = job()
    assert await ledger.record(verdict("correct", the_job=same))
    assert not await ledger.record(verdict("false_positive", the_job=same))
    assert await ledger.record(verdict("false_positive", source="review", the_job=same))
    for _ in range(3):
        await ledger.record(verdict("correct"))
    assert len(await ledger.query(limit=None)) == 3  # retention


async def worker_with(
    entry: CacheEntry, **settings: Any
) -> tuple[AuditWorker, MemoryQueue, MemoryLedger, MemoryStore]:
    store, queue, ledger = MemoryStore(), MemoryQueue(), MemoryLedger()
    await store.put(entry, np.full(4, 0.5, dtype=np.float32), ttl_s=60, cap=None)
    worker = AuditWorker("w", queue, ContrastJudge(), ledger, store, AuditSettings(**settings))
    return worker, queue, ledger, store


def cached(text: str = "Cancel my order") -> CacheEntry:
    return CacheEntry(
        id="e1", scope="s1", exact="x", namespace="shop", tenant="t", model="m", text=text,
        response="{}", embedder="e", created_at=time.time(),
    )  # fmt: skip


async def test_false_hit_raises_the_entry_bar() -> None:
    worker, queue, ledger, store = await worker_with(cached())
    await queue.put(job())
    assert await worker.run_once(block_s=0.1) == 1
    [recorded] = await ledger.query()
    assert recorded.verdict == "false_positive" and "negation" in recorded.reason
    assert recorded.job.cached_prompt == "Cancel my order" and recorded.judge == "contrast/2"
    entry = await store.get_exact("s1", "x")
    assert entry is not None and entry.min_similarity == pytest.approx(0.94)
    assert await queue.depth() == 0


async def test_quarantine_action_and_correct_hits_change_nothing() -> None:
    worker, queue, ledger, store = await worker_with(cached(), action="quarantine")
    await queue.put(job(new="Please cancel my order", similarity=0.97))
    await worker.run_once(block_s=0.1)
    entry = await store.get_exact("s1", "x")
    assert entry is not None and entry.min_similarity is None and not entry.quarantined
    await queue.put(job())
    await worker.run_once(block_s=0.1)
    entry = await store.get_exact("s1", "x")
    assert entry is not None and entry.quarantined
    assert [v.verdict for v in await ledger.query()] == ["false_positive", "correct"]


async def test_a_job_delivered_twice_is_judged_once() -> None:
    worker, queue, ledger, _ = await worker_with(cached())
    twice = job()
    await queue.put(twice)
    await queue.put(twice)  # at-least-once delivery: the same job again
    await worker.run_once(block_s=0.1)
    assert len(await ledger.query()) == 1


async def test_a_false_hit_becomes_one_hard_negative_and_a_later_correct_label_takes_it_back() -> (
    None
):
    worker, queue, ledger, _ = await worker_with(cached())
    first, again = job(), job()  # the same pair, served twice
    for each in (first, again):
        await queue.put(each)
    await worker.run_once(block_s=0.1)
    [pair] = await ledger.hard_negatives()
    assert (pair.cached_prompt, pair.new_prompt) == ("Cancel my order", "Don't cancel my order")
    assert pair.similarity == pytest.approx(0.93) and pair.source == "judge"
    await queue.put(job(new="Please cancel my order", similarity=0.97))  # judged correct
    await worker.run_once(block_s=0.1)
    assert len(await ledger.hard_negatives()) == 1
    # A person says the false hit was fine after all: no longer a hard negative.
    review = verdict("correct", source="review", the_job=first)
    await act_on(review, worker.store, ledger, worker.settings)
    assert await ledger.hard_negatives() == []


async def test_a_redelivered_job_repeats_a_lost_action_without_judging_again() -> None:
    worker, queue, ledger, store = await worker_with(cached())
    lost = job()
    # A worker recorded this verdict and died before acting on it or acknowledging it.
    await ledger.record(
        Verdict(id=lost.job_id, job=lost, verdict="false_positive", judge="contrast/2",
                created_at=time.time())
    )  # fmt: skip
    await queue.put(lost)
    await worker.run_once(block_s=0.1)
    entry = await store.get_exact("s1", "x")
    assert entry is not None and entry.min_similarity == pytest.approx(0.94)
    assert len(await ledger.query(limit=None)) == 1 and await queue.depth() == 0
    assert worker.processed == 0  # acknowledged, not judged a second time


async def test_a_near_miss_judged_wrong_is_a_hard_negative_but_guards_nothing() -> None:
    worker, queue, ledger, store = await worker_with(cached())
    await queue.put(job(near_miss=True, similarity=0.88))
    await worker.run_once(block_s=0.1)
    assert [p.similarity for p in await ledger.hard_negatives()] == [pytest.approx(0.88)]
    entry = await store.get_exact("s1", "x")
    assert entry is not None and entry.min_similarity is None


class FlakyQueue(MemoryQueue):
    """An in-process queue whose ``put`` fails while ``down`` (Redis unreachable)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def put(self, job: AuditJob) -> None:
        if self.down:
            raise QueueError("queue unreachable (simulated)")
        await super().put(job)


def served_hit(text: str) -> tuple[CacheKey, Lookup]:
    key = CacheKey(base="b", prompt="p", embedder="e", scope="s1", exact=uuid.uuid4().hex, text=text, tenant="t",
                   namespace="shop", model="m")  # fmt: skip
    entry = CacheEntry(id=uuid.uuid4().hex, scope="s1", exact="x", namespace="shop", tenant="t",
                       model="m", text="cached", response="{}", embedder="e",
                       created_at=time.time())  # fmt: skip
    hit = Candidate(entry=entry, similarity=0.95, exact=False)
    return key, Lookup(outcome=Outcome.HIT, threshold=0.9, candidate=hit)


async def test_jobs_the_queue_refuses_are_spilled_and_queued_again_in_order() -> None:
    queue = FlakyQueue()
    settings = AuditSettings(sample_rate=1.0, spill_max=3)
    auditor = Auditor(settings, queue, MemoryLedger(), MemoryStore(), run_worker=False)
    queue.down = True
    for n in range(5):
        key, lookup = served_hit(f"q{n}")
        await auditor.after_lookup(request_id=f"r{n}", key=key, lookup=lookup, key_id=None)
    assert [j.request_id for j in auditor.spill] == ["r2", "r3", "r4"]  # the oldest dropped
    assert auditor.spill.dropped == 2 and await queue.depth() == 0
    assert await auditor.spill.requeue() == 0  # still down: nothing lost, nothing sent
    queue.down = False
    key, lookup = served_hit("q5")  # refused a moment ago: it waits behind the others
    await auditor.after_lookup(request_id="r5", key=key, lookup=lookup, key_id=None)
    assert [j.request_id for j in auditor.spill] == ["r3", "r4", "r5"]
    assert await auditor.spill.requeue() == 3  # what the retry loop does once a second
    taken = await queue.take("w", count=10, block_s=0.1)
    assert [d.job.request_id for d in taken] == ["r3", "r4", "r5"]
    assert not auditor.spill and auditor.spill.dropped == 3
    key, lookup = served_hit("q6")  # an empty spill: straight to the queue
    await auditor.after_lookup(request_id="r6", key=key, lookup=lookup, key_id=None)
    assert [d.job.request_id for d in await queue.take("w", 10, 0.1)] == ["r6"]


async def test_an_exact_repeat_is_never_judged_wrong_against_itself() -> None:
    """Issue 18: the first exact repeat of a prompt with a mid-sentence "I'm" was judged a
    false hit against itself, which raised the entry's bar to 1.0 (closing it) and stored
    an identical pair as a hard negative."""
    text = "Can you tell me what I'm supposed to bring, and what O'Brien said?"
    entry = cached(text)
    worker, queue, ledger, store = await worker_with(entry)
    auditor = Auditor(AuditSettings(), queue, ledger, store, run_worker=False)
    key = CacheKey(
        base="b",
        prompt="p",
        embedder="e",
        scope="s1",
        exact="x",
        text=text,
        tenant="t",
        namespace="shop",
        model="m",
    )
    repeat = Candidate(entry=entry, similarity=1.0, exact=True)
    lookup = Lookup(outcome=Outcome.HIT, threshold=0.9, candidate=repeat)
    await auditor.after_lookup(request_id="r1", key=key, lookup=lookup, key_id=None)
    assert await worker.run_once(block_s=0.1) == 1  # burn-in: the repeat is audited
    [recorded] = await ledger.query()
    assert recorded.verdict == "correct", recorded.reason
    assert await ledger.hard_negatives() == []
    kept = await store.get_exact("s1", "x")
    assert kept is not None and kept.min_similarity is None and not kept.quarantined
