"""False-positive rate with an honest interval."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

from pydantic import BaseModel

from audit.estimate import Corrected, JudgeError, corrected, judge_error, weighted
from audit.schema import Verdict
from cache.cohorts import prompt_cohorts

Z95 = 1.959963984540054


def wilson(failures: float, trials: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval (95% by default) for a binomial proportion. Weighted samples
    pass their weighted failures and Kish effective sample size."""
    if trials <= 0:
        return 0.0, 1.0
    p = failures / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    margin = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - margin), min(1.0, centre + margin)


class FPRate(BaseModel):
    """False-positive rate of served hits in one group: each label weighted by the inverse of
    its sampling probability (``audit.estimate``), so it estimates the rate of served hits,
    not of audited ones."""

    false_positives: int
    """Hits labelled false positive."""
    labelled: int
    """Hits labelled correct or false positive (uncertain and error are left out)."""
    rate: float | None
    """Weighted false positives / weighted labels (None with no labels); equal to
    false_positives / labelled when every label was sampled alike."""
    lower: float
    """Wilson 95% lower bound, on the effective sample size."""
    upper: float
    """Wilson 95% upper bound, on the effective sample size."""
    effective_n: float = 0.0
    """Kish effective sample size of the weighted labels (at most ``labelled``)."""
    corrected: Corrected | None = None
    """The judge's rate corrected for the judge's own error measured on reviews (with its
    bootstrap interval); None when not computed or not computable (``corrected_reason``)."""
    corrected_reason: str | None = None
    """Why ``corrected`` is None (e.g. too few reviews), when it was asked for."""


def effective(verdicts: Iterable[Verdict], *, tenant: str | None = None) -> list[Verdict]:
    """One label per job: a person's review beats the app's feedback beats the judge.

    An app's feedback is its tenant's word on its own hit: it counts only with ``tenant`` set
    to that tenant (the tenant's own statistics), never in the shared ones (a namespace's FP
    rate, tuning, the autopilot), which every tenant of the namespace is served by. Else one
    tenant's labels, true or not, moved the thresholds of all. A person's review of it counts
    everywhere; so does the judge's verdict on the same hit."""
    rank = {"judge": 0, "feedback": 1, "review": 2}
    best: dict[str, Verdict] = {}
    for verdict in verdicts:
        if verdict.source == "feedback" and verdict.job.tenant != tenant:
            continue
        current = best.get(verdict.job.job_id)
        if current is None or (rank[verdict.source], verdict.created_at) >= (
            rank[current.source],
            current.created_at,
        ):
            best[verdict.job.job_id] = verdict
    return list(best.values())


def fp_rate(
    verdicts: Iterable[Verdict],
    *,
    shadow: bool = False,
    tenant: str | None = None,
    exact: bool = False,
    error: JudgeError | None = None,
) -> FPRate:
    """The FP rate of served semantic hits (near-misses are not served, so not counted), or
    with ``exact`` of exact repeats, or with ``shadow`` of the hits shadow mode would have
    served; ``tenant``'s feedback counted (``effective``). With ``error`` (the judge's error
    from reviews) also the rate corrected for it."""
    verdicts = list(verdicts)

    def counted(v: Verdict) -> bool:
        job = v.job
        return not (job.near_miss or job.admission) and job.shadow == shadow and job.exact == exact

    served = [v for v in effective(verdicts, tenant=tenant) if counted(v)]
    fp = sum(v.verdict == "false_positive" for v in served)
    labelled = fp + sum(v.verdict == "correct" for v in served)
    estimate = weighted(served)
    rate = estimate.rate
    lower, upper = wilson((rate or 0.0) * estimate.n_eff, estimate.n_eff)
    fixed, why = None, None
    if error is not None:
        fixed, why = corrected([v for v in verdicts if v.source == "judge" and counted(v)], error)
    return FPRate(
        false_positives=fp,
        labelled=labelled,
        rate=rate,
        lower=lower,
        upper=upper,
        effective_n=estimate.n_eff,
        corrected=fixed,
        corrected_reason=why,
    )


def cohort(verdict: Verdict) -> dict[str, str]:
    """The cohorts a verdict belongs to: model, similarity band, prompt-length bucket,
    language of the new prompt and judge. Every value but the model's (an operator's alias)
    comes from a small fixed set, so each can be a metric label: 21 similarity bands, 3
    lengths, 12 languages with ``other`` and ``und`` (``cache.language.label``), the judge's
    kind without its version and model (``llm``, ``contrast``...; ``review``, ``feedback``)."""
    band = math.floor(min(1.0, max(0.0, verdict.job.similarity)) * 20) / 20
    return {
        "model": verdict.job.model,
        "similarity": f"{band:.2f}-{band + 0.05:.2f}",
        **prompt_cohorts(verdict.job.new_prompt),
        "judge": (verdict.judge or verdict.source).split("/")[0],
    }


class FPBreakdown(BaseModel):
    """The FP rate of a window's verdicts, cut every way an operator asks for it. Semantic
    hits only, except ``exact``: an exact repeat served is not a similarity decision, and
    counting it as a correct hit dilutes the rate alerts use."""

    window_s: int
    """The window, in seconds."""
    overall: FPRate
    """All served semantic hits: the rate alerts use."""
    exact: FPRate
    """Served exact repeats, apart."""
    namespaces: dict[str, FPRate]
    """Per namespace."""
    tenants: dict[str, FPRate]
    """Per tenant, over its own hits: the one rate its apps' feedback counts in."""
    shadow: dict[str, FPRate]
    """Shadow mode: the rate the would-be hits would have had if served (namespaces that had
    any)."""
    cohorts: dict[str, dict[str, FPRate]]
    """Per cohort dimension (model, similarity band, prompt length), per value."""
    judge_error: JudgeError
    """The judge's error measured on the window's reviews of judged hits (behind every
    ``corrected`` rate)."""


def serving_verdicts(verdicts: Iterable[Verdict]) -> list[Verdict]:
    """The verdicts on what the serving versions answered (or would have, in shadow mode):
    a rollout target's would-be hits are evidence for its cutover only (``AuditJob.rollout``),
    never part of FP rates, alerts or tuning."""
    return [verdict for verdict in verdicts if not verdict.job.rollout]


def fp_breakdown(verdicts: Sequence[Verdict], window_s: int) -> FPBreakdown:
    """The breakdown of ``verdicts`` (those of the last ``window_s`` seconds)."""
    verdicts = serving_verdicts(verdicts)
    groups: dict[str, dict[str, list[Verdict]]] = defaultdict(lambda: defaultdict(list))
    by_namespace: dict[str, list[Verdict]] = defaultdict(list)
    by_tenant: dict[str, list[Verdict]] = defaultdict(list)
    for item in verdicts:
        by_namespace[item.job.namespace].append(item)
        by_tenant[item.job.tenant].append(item)
        for dimension, value in ({} if item.job.exact else cohort(item)).items():
            groups[dimension][value].append(item)  # exact repeats are no similarity cohort
    error = judge_error(verdicts)
    return FPBreakdown(
        window_s=window_s,
        overall=fp_rate(verdicts, error=error),
        exact=fp_rate(verdicts, exact=True, error=error),
        namespaces={ns: fp_rate(v, error=error) for ns, v in sorted(by_namespace.items())},
        tenants={t: fp_rate(v, tenant=t, error=error) for t, v in sorted(by_tenant.items())},
        shadow={
            ns: fp_rate(v, shadow=True, error=error)
            for ns, v in sorted(by_namespace.items())
            if any(item.job.shadow for item in v)
        },
        cohorts={
            dimension: {value: fp_rate(v, error=error) for value, v in sorted(values.items())}
            for dimension, values in sorted(groups.items())
        },
        judge_error=error,
    )
