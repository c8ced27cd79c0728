"""The FP estimate: exact repeats apart, labels weighted by how they were sampled, and the
judge's own error (measured on reviews) corrected for."""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import pytest

from audit.auditor import Auditor
from audit.estimate import MIN_REVIEWS, judge_error
from audit.ledgers.memory import MemoryLedger
from audit.queues.memory import MemoryQueue
from audit.sampler import Sampler
from audit.schema import AuditJob, Verdict, VerdictKind, job_kind
from audit.settings import AuditSettings
from audit.stats import fp_breakdown, fp_rate
from audit.window import VerdictWindow
from cache.schema import CacheEntry, CacheKey, Candidate, Lookup, Outcome
from cache.stores.memory import MemoryStore


def job(**extra: Any) -> AuditJob:
    values: dict[str, Any] = {
        "job_id": uuid.uuid4().hex, "request_id": uuid.uuid4().hex, "entry_id": "e1",
        "new_prompt": "Don't cancel my order", "cached_prompt": "Cancel my order",
        "cached_answer": "Cancelled.", "similarity": 0.93, "threshold": 0.9,
        "namespace": "shop", "model": "m", "scope": "s1",
    }  # fmt: skip
    values.update(extra)
    return AuditJob(**values)


def label(
    verdict: VerdictKind, on: AuditJob | None = None, source: str = "judge", **extra: Any
) -> Verdict:
    on = on or job(**extra)
    return Verdict.model_validate(
        {"id": uuid.uuid4().hex, "source": source, "job": on, "verdict": verdict,
         "judge": "contrast/2" if source == "judge" else source, "created_at": time.time()}
    )  # fmt: skip


# Exact repeats


def test_exact_repeats_are_reported_apart_and_do_not_dilute_the_semantic_rate() -> None:
    verdicts = [
        label("false_positive"),
        label("correct"),
        label("correct", similarity=1.0, exact=True),  # an exact repeat, served
    ]
    breakdown = fp_breakdown(verdicts, 3600)
    assert breakdown.overall.rate == pytest.approx(1 / 2)  # was 1/3 with the repeat pooled
    assert breakdown.namespaces["shop"].labelled == 2
    assert breakdown.exact.labelled == 1 and breakdown.exact.rate == 0.0
    assert "1.00-1.05" not in breakdown.cohorts["similarity"]  # cohorts are semantic too
    assert fp_rate(verdicts).rate == pytest.approx(1 / 2)  # what the FP gauge is fed


async def test_the_fp_gauges_window_is_fed_the_semantic_rate() -> None:
    verdicts = [label("false_positive"), label("correct"), label("correct", exact=True)]

    async def since(_: float) -> list[Verdict]:
        return verdicts

    rates = await VerdictWindow(3600).refresh(since)
    assert rates["shop"].rate == pytest.approx(1 / 2) and rates["shop"].labelled == 2


async def test_an_exact_hit_is_recorded_as_exact_and_counted_under_its_own_kind() -> None:
    key = CacheKey(base="b", prompt="p", embedder="e", scope="s1", exact="k", text="Cancel my order", tenant="t", namespace="shop",
                   model="m")  # fmt: skip
    entry = CacheEntry(id="e1", scope="s1", exact="k", namespace="shop", tenant="t", model="m",
                       text="Cancel my order", response="{}", embedder="e",
                       created_at=time.time())  # fmt: skip
    queue = MemoryQueue()
    auditor = Auditor(AuditSettings(), queue, MemoryLedger(), MemoryStore(), run_worker=False)

    async def served(exact: bool) -> AuditJob:
        hit = Candidate(entry=entry, similarity=1.0, exact=exact)
        lookup = Lookup(outcome=Outcome.HIT, threshold=0.9, candidate=hit)
        await auditor.after_lookup(request_id="r", key=key, lookup=lookup, key_id=None)
        [delivery] = await queue.take("w", 1, 0.1)
        return delivery.job

    exact, semantic = await served(True), await served(False)
    assert exact.exact and job_kind(exact) == "exact"  # recording rules count kind="hit"
    assert not semantic.exact and job_kind(semantic) == "hit"


def test_ledger_records_from_before_are_read_as_semantic_with_weight_one() -> None:
    old = label("false_positive").model_dump(mode="json")
    del old["job"]["exact"], old["job"]["sample_p"]
    verdict = Verdict.model_validate(old)
    assert not verdict.job.exact and verdict.job.sample_p is None
    assert fp_rate([verdict, label("correct")]).rate == pytest.approx(1 / 2)


# Weighting by sampling probability


def test_burn_in_and_sampled_labels_are_weighted_to_estimate_served_hits() -> None:
    burn_in = [label("correct", sample_p=1.0) for _ in range(10)]  # always audited, all fine
    sampled = [label("false_positive", sample_p=0.1) for _ in range(5)] + [
        label("correct", sample_p=0.1) for _ in range(5)
    ]  # each stands for 10 served hits
    rate = fp_rate(burn_in + sampled)
    truth = 50 / 110  # served: 10 burn-in hits, 100 later hits of which half were false
    assert rate.rate == pytest.approx(truth)
    assert rate.false_positives == 5 and rate.labelled == 20  # raw counts kept
    assert rate.effective_n == pytest.approx(110**2 / (10 + 10 * 100))  # Kish: about 12
    assert rate.lower < truth < rate.upper
    pooled = fp_rate(label(v.verdict) for v in burn_in + sampled)
    assert pooled.rate == pytest.approx(5 / 20)  # what it was without weights
    assert rate.upper - rate.lower > pooled.upper - pooled.lower  # n_eff 12, not 20


async def test_the_sampler_says_with_what_probability_a_hit_was_audited() -> None:
    settings = AuditSettings(burn_in=2, sample_rate=0.25, namespace_sample_rates={"q": 0.5})
    sampler = Sampler(settings, random.Random(3))
    assert [sampler.hit_probability("ns", seen) for seen in (1, 2, 3)] == [1.0, 1.0, 0.25]
    assert sampler.hit_probability("q", 9) == 0.5

    queue = MemoryQueue()
    auditor = Auditor(settings, queue, MemoryLedger(), MemoryStore(), run_worker=False,
                      sampler=sampler)  # fmt: skip
    key = CacheKey(
        base="b",
        prompt="p",
        embedder="e",
        scope="s1",
        exact="k",
        text="Cancel it",
        tenant="t",
        namespace="ns",
        model="m",
    )
    entry = CacheEntry(id="e7", scope="s1", exact="x", namespace="ns", tenant="t", model="m",
                       text="Cancel my order", response="{}", embedder="e",
                       created_at=time.time())  # fmt: skip
    lookup = Lookup(outcome=Outcome.HIT, threshold=0.9,
                    candidate=Candidate(entry=entry, similarity=0.95, exact=False))  # fmt: skip

    async def serve(times: int) -> list[float | None]:
        for n in range(times):
            await auditor.after_lookup(request_id=f"r{n}", key=key, lookup=lookup, key_id=None)
        return [d.job.sample_p for d in await queue.take("w", 100, 0.1)]

    probabilities = await serve(40)
    assert probabilities[:2] == [1.0, 1.0]  # burn-in
    assert len(probabilities) > 2 and set(probabilities[2:]) == {0.25}


# The judge's error, from reviews


def scripted(reviews_fp: int = 20, reviews_ok: int = 40) -> list[Verdict]:
    """A judge with sensitivity 0.8 and specificity 0.9 on 100 hits whose true FP rate is
    0.2: it says FP on 0.8 * 20 + 0.1 * 80 = 24. People reviewed ``reviews_fp`` of the true
    false positives and ``reviews_ok`` of the correct ones, in the judge's proportions."""
    verdicts: list[Verdict] = []

    def hits(truth: VerdictKind, said: VerdictKind, count: int, reviewed: int) -> None:
        for n in range(count):
            judged = label(said)
            verdicts.append(judged)
            if n < reviewed:
                verdicts.append(label(truth, on=judged.job, source="review"))

    missed, false_alarms = reviews_fp // 5, reviews_ok // 10
    hits("false_positive", "false_positive", 16, reviews_fp - missed)
    hits("false_positive", "correct", 4, missed)
    hits("correct", "false_positive", 8, false_alarms)
    hits("correct", "correct", 72, reviews_ok - false_alarms)
    return verdicts


def test_the_judges_error_is_measured_on_reviews_and_corrected_for() -> None:
    verdicts = scripted()
    error = judge_error(verdicts)
    assert (error.reviewed_false_positives, error.reviewed_correct) == (20, 40)
    assert error.sensitivity == pytest.approx(0.8) and error.specificity == pytest.approx(0.9)

    breakdown = fp_breakdown(verdicts, 3600)
    rate = breakdown.overall
    assert rate.corrected is not None and rate.corrected_reason is None
    assert rate.corrected.rate == pytest.approx(0.2)  # (0.24 + 0.9 - 1) / (0.8 + 0.9 - 1)
    assert rate.corrected.lower < 0.2 < rate.corrected.upper
    judge_only = fp_rate(v for v in verdicts if v.source == "judge")
    assert judge_only.rate == pytest.approx(0.24)  # what the judge alone says
    width = rate.corrected.upper - rate.corrected.lower
    assert width > judge_only.upper - judge_only.lower  # the reviews' uncertainty is in it
    assert breakdown.namespaces["shop"].corrected == rate.corrected  # same data, same seed
    assert breakdown.judge_error.model_dump()["sensitivity"] == pytest.approx(0.8)


def test_too_few_reviews_give_no_correction_and_say_why() -> None:
    verdicts = scripted(reviews_fp=MIN_REVIEWS - 5, reviews_ok=40)
    rate = fp_breakdown(verdicts, 3600).overall
    assert rate.corrected is None
    assert rate.corrected_reason is not None and "too few reviews" in rate.corrected_reason
    assert rate.rate is not None  # the uncorrected rate is still reported
    assert fp_rate(verdicts).corrected_reason is None  # not asked for: the gauge's path


def test_a_judge_no_better_than_chance_is_not_corrected() -> None:
    kinds: tuple[VerdictKind, VerdictKind] = ("false_positive", "correct")
    verdicts: list[Verdict] = []
    for truth in kinds:
        for said in kinds:
            for _ in range(MIN_REVIEWS):
                judged = label(said)
                verdicts += [judged, label(truth, on=judged.job, source="review")]
    rate = fp_breakdown(verdicts, 3600).overall
    assert rate.corrected is None and rate.corrected_reason is not None
    assert "chance" in rate.corrected_reason
