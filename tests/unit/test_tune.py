"""Threshold tuning math on seeded labels (no services)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from audit.ledgers.base import NO_CANDIDATE, similarity_bin
from audit.schema import AuditJob, Verdict
from audit.settings import AuditSettings
from audit.stats import Z95
from audit.tune import TuneLabel, labels_from_verdicts, render, row, tune


def labels(
    similarity: float, count: int, false_positive: bool, weight: float = 1.0
) -> list[TuneLabel]:
    return [
        TuneLabel(similarity=similarity, false_positive=false_positive, weight=weight, kind="hit")
        for _ in range(count)
    ]


def test_recommends_the_lowest_threshold_whose_upper_bound_is_under_the_target() -> None:
    seeded = labels(0.853, 20, True) + labels(0.921, 200, False)
    bins = {50: 500, 85: 300, 92: 200}
    report = tune(seeded, bins, 0.05, namespace="shop", current=0.95)
    by_t = {r.threshold: r for r in report.rows}
    # At 0.85 the 20 false hits are above the line: 20/220 = 9.1%.
    assert by_t[0.85].fp_rate == pytest.approx(20 / 220)
    assert by_t[0.85].fp_upper > 0.05
    # From 0.86 only the 200 correct hits remain: Wilson's upper bound for 0/200 is
    # z^2 / (n + z^2).
    assert by_t[0.86].fp_rate == 0.0 and by_t[0.86].labels == 200
    assert by_t[0.86].fp_upper == pytest.approx(Z95**2 / (200 + Z95**2))
    assert report.recommended == 0.86 and report.labels_in_band == 200
    assert by_t[0.86].hit_rate == pytest.approx(200 / 1000)
    assert by_t[0.85].hit_rate == pytest.approx(500 / 1000)
    assert by_t[0.93].labels == 0 and by_t[0.93].hit_rate == 0.0
    text = render(report)
    assert "0.86" in text and "<- recommended" in text and "(current)" in text


def test_too_few_labels_recommend_nothing_and_say_how_many_are_needed() -> None:
    report = tune(labels(0.97, 30, False), {97: 30}, 0.05)
    assert report.recommended is None
    assert "73 are needed" in report.reason  # 0 of 73: upper bound 0.0500 - 1e-4
    assert tune([], {}, 0.05).reason.startswith("no labels yet")


def test_clean_labels_at_097_never_recommend_a_threshold_below_them() -> None:
    """Issue 18: 100 correct labels, all at 0.97. Wilson's bound is under 5% at every
    threshold up to 0.97, but nothing is known about prompts below 0.97."""
    seeded = labels(0.97, 100, False)
    alone = tune(seeded, {97: 100}, 0.05)
    assert alone.recommended == 0.97 and alone.labels_in_band is None
    # With a current threshold of 0.90 the band [t, 0.90) is empty for every t below it:
    # the recommendation is to stay, and says how many labels it moves across.
    report = tune(seeded, {97: 100}, 0.05, current=0.90)
    assert report.recommended == 0.90 and report.labels_in_band == 0
    assert "lack labels in the band" in report.reason
    assert "(0 labels between it and the current threshold)" in render(report)
    # Labels in the band let it go down, but only as far as they reach.
    spread = seeded + labels(0.875, 12, False)
    down = tune(spread, {}, 0.05, current=0.90)
    assert down.recommended == 0.87 and down.labels_in_band == 12
    assert tune(spread, {}, 0.05, current=0.90, min_band_labels=13).recommended == 0.90


def test_weights_use_the_kish_effective_sample_size() -> None:
    seeded = labels(0.9, 2, True, weight=10.0) + labels(0.9, 2, False, weight=1.0)
    estimate = row(0.9, seeded, {})
    assert estimate.fp_rate == pytest.approx(20 / 22)
    assert estimate.effective_n == pytest.approx(22**2 / 202, abs=0.01)
    assert estimate.hit_rate is None  # no lookup data


def test_bins_are_floors_of_hundredths() -> None:
    assert [similarity_bin(s) for s in (0.95, 0.9499, 0.999, 1.0, -0.2)] == [95, 94, 99, 100, -20]
    assert similarity_bin(None) == NO_CANDIDATE


def verdict(similarity: float, kind: str, source: str = "judge", job: AuditJob | None = None,
            near_miss: bool = False, **extra: Any) -> Verdict:  # fmt: skip
    job = job or AuditJob(
        job_id=uuid.uuid4().hex, request_id="r", entry_id="e", new_prompt="a", cached_prompt="b",
        cached_answer="c", similarity=similarity, threshold=0.9, namespace="shop", model="m",
        near_miss=near_miss,
    )  # fmt: skip
    return Verdict(id=uuid.uuid4().hex, source=source, job=job, verdict=kind,
                   created_at=time.time(), **extra)  # fmt: skip


def test_labels_take_the_effective_label_and_weigh_by_sampling_rate() -> None:
    overturned = verdict(0.93, "false_positive")
    found = labels_from_verdicts(
        [
            overturned,
            verdict(0.93, "correct", source="review", job=overturned.job),
            verdict(0.91, "false_positive"),
            verdict(0.87, "false_positive", near_miss=True),
            verdict(0.95, "uncertain"),
            verdict(0.95, "error"),
        ],
        AuditSettings(sample_rate=0.1, near_miss_rate=0.5),
    )
    summary = sorted((t.similarity, t.false_positive, round(t.weight, 6), t.kind) for t in found)
    assert summary == [
        (0.87, True, 2.0, "near_miss"),
        (0.91, True, 10.0, "hit"),
        (0.93, False, 10.0, "hit"),  # the review overruled the judge
    ]


def test_exact_repeats_are_no_threshold_evidence_and_recorded_probabilities_weigh() -> None:
    """An exact repeat was served without a similarity decision; a job sampled in burn-in
    (``sample_p`` 1.0) stands for one served hit, not for 1 / sample_rate."""
    exact = AuditJob(
        job_id="x", request_id="r", entry_id="e", new_prompt="a", cached_prompt="a",
        cached_answer="c", similarity=1.0, threshold=0.9, namespace="shop", model="m",
        exact=True, sample_p=1.0,
    )  # fmt: skip
    burn_in = exact.model_copy(update={"job_id": "b", "exact": False, "similarity": 0.94})
    found = labels_from_verdicts(
        [verdict(1.0, "correct", job=exact), verdict(0.94, "correct", job=burn_in)],
        AuditSettings(sample_rate=0.1),
    )
    assert [(t.similarity, t.weight) for t in found] == [(0.94, 1.0)]
