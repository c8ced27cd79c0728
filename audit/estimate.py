"""The FP rate of served hits as an estimate: labels weighted by how they were sampled, and
the judge's own error, measured on the verdicts people reviewed, corrected for.

- Weights: an entry's burn-in hits are always audited, later hits at the sample rate, so a
  pooled proportion over-counts burn-in. Each label stands for 1 / ``sample_p`` served hits
  (Horvitz-Thompson); the interval is Wilson's on Kish's effective sample size
  n_eff = (sum w)^2 / sum w^2.
- Judge error: where a person reviewed a judge's verdict, the review is the truth. From those
  pairs, sensitivity = P(judge says FP | truly FP) and specificity = P(judge says correct |
  truly correct); the judge's observed rate p is corrected as (p + spec - 1) / (sens + spec - 1)
  (Rogan and Gladen, 1978), clipped to [0, 1]. This assumes reviewed verdicts are typical of
  their true class. Its interval is a seeded parametric bootstrap over the three proportions
  (Jeffreys beta draws), so the reviews' own uncertainty widens it.

Hand-written: statsmodels has Wilson and Kish but no misclassification correction; the
bootstrap is a few lines of numpy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, computed_field

from audit.schema import AuditJob, Verdict

MIN_REVIEWS = 10
"""Reviews of judged hits needed in each true class (FP, correct) to estimate the judge's error."""
BOOTSTRAP_DRAWS = 4000
"""Draws of the corrected rate's bootstrap (bounded: about a millisecond)."""
BOOTSTRAP_SEED = 18
"""The bootstrap's seed: the same verdicts give the same interval."""
LABELS = ("correct", "false_positive")


def weight(job: AuditJob) -> float:
    """How many served hits one label stands for: 1 / its sampling probability (1 for jobs
    recorded before the probability was kept)."""
    return 1.0 / job.sample_p if job.sample_p else 1.0


@dataclass(frozen=True)
class Weighted:
    """A weighted proportion of false positives."""

    false_positives: float
    """Weight of the labels that say false positive."""
    total: float
    """Weight of all labels."""
    n_eff: float
    """Kish's effective sample size."""

    @property
    def rate(self) -> float | None:
        return self.false_positives / self.total if self.total else None


def weighted(labels: Iterable[Verdict]) -> Weighted:
    """The weighted FP proportion of ``labels`` (only ``correct`` and ``false_positive`` count)."""
    pairs = [(weight(v.job), v.verdict == "false_positive") for v in labels if v.verdict in LABELS]
    total = sum(w for w, _ in pairs)
    squares = sum(w * w for w, _ in pairs)
    return Weighted(
        false_positives=sum(w for w, fp in pairs if fp),
        total=total,
        n_eff=total * total / squares if squares else 0.0,
    )


class JudgeError(BaseModel):
    """The judge's error in both directions, from judged hits a person reviewed (the latest
    review is the truth)."""

    reviewed_false_positives: int
    """Reviewed judged hits that are truly false positives."""
    reviewed_correct: int
    """Reviewed judged hits that are truly correct."""
    missed: int
    """Of the true false positives, how many the judge called correct."""
    false_alarms: int
    """Of the truly correct hits, how many the judge called false positive."""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def sensitivity(self) -> float | None:
        """P(judge says FP | truly FP)."""
        n = self.reviewed_false_positives
        return (n - self.missed) / n if n else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def specificity(self) -> float | None:
        """P(judge says correct | truly correct)."""
        n = self.reviewed_correct
        return (n - self.false_alarms) / n if n else None


def judge_error(verdicts: Iterable[Verdict]) -> JudgeError:
    """Judge verdicts against the latest review of the same job."""
    judged: dict[str, Verdict] = {}
    reviewed: dict[str, Verdict] = {}
    for v in verdicts:
        if v.verdict not in LABELS:
            continue
        if v.source == "judge":
            judged[v.job.job_id] = v
        elif v.source == "review":
            current = reviewed.get(v.job.job_id)
            if current is None or v.created_at >= current.created_at:
                reviewed[v.job.job_id] = v
    truly_fp = truly_ok = missed = false_alarms = 0
    for job_id, review in reviewed.items():
        judge = judged.get(job_id)
        if judge is None:
            continue
        if review.verdict == "false_positive":
            truly_fp += 1
            missed += judge.verdict == "correct"
        else:
            truly_ok += 1
            false_alarms += judge.verdict == "false_positive"
    return JudgeError(
        reviewed_false_positives=truly_fp,
        reviewed_correct=truly_ok,
        missed=missed,
        false_alarms=false_alarms,
    )


class Corrected(BaseModel):
    """The judge's FP rate corrected for the judge's own error."""

    rate: float
    """(p + specificity - 1) / (sensitivity + specificity - 1), clipped to [0, 1]; p is the
    judge's weighted FP rate over the group's judged hits."""
    lower: float
    """2.5th percentile of the bootstrap (judge rate, sensitivity and specificity all drawn)."""
    upper: float
    """97.5th percentile of the bootstrap."""
    sensitivity: float
    """P(judge says FP | truly FP), from reviews."""
    specificity: float
    """P(judge says correct | truly correct), from reviews."""


def corrected(
    judge_labels: Sequence[Verdict], error: JudgeError
) -> tuple[Corrected | None, str | None]:
    """The corrected rate of the judge's verdicts ``judge_labels``, or None and why not."""
    sens, spec = error.sensitivity, error.specificity
    fewest = min(error.reviewed_false_positives, error.reviewed_correct)
    if sens is None or spec is None or fewest < MIN_REVIEWS:
        return None, (
            f"too few reviews of judged hits: {error.reviewed_false_positives} false positive, "
            f"{error.reviewed_correct} correct (at least {MIN_REVIEWS} of each needed)"
        )
    if sens + spec <= 1.0:
        return None, "the judge is no better than chance on the reviewed hits"
    observed = weighted(judge_labels)
    if observed.rate is None:
        return None, "no judge verdicts to correct"
    point = min(1.0, max(0.0, (observed.rate + spec - 1) / (sens + spec - 1)))
    lower, upper = _bootstrap(observed, error)
    fixed = Corrected(rate=point, lower=lower, upper=upper, sensitivity=sens, specificity=spec)
    return fixed, None


def _bootstrap(observed: Weighted, error: JudgeError) -> tuple[float, float]:
    """Percentile interval of the corrected rate, drawing each proportion from its Jeffreys
    posterior (defined at 0 and 1, unlike a binomial resample); draws where the judge is no
    better than chance are dropped."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    n = observed.n_eff
    x = (observed.rate or 0.0) * n
    p = rng.beta(x + 0.5, n - x + 0.5, BOOTSTRAP_DRAWS)
    tp = error.reviewed_false_positives - error.missed
    sens = rng.beta(tp + 0.5, error.missed + 0.5, BOOTSTRAP_DRAWS)
    tn = error.reviewed_correct - error.false_alarms
    spec = rng.beta(tn + 0.5, error.false_alarms + 0.5, BOOTSTRAP_DRAWS)
    youden = sens + spec - 1
    keep = youden > 0
    rates = np.clip((p[keep] + spec[keep] - 1) / youden[keep], 0.0, 1.0)
    if rates.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(rates, [2.5, 97.5])
    return float(low), float(high)
