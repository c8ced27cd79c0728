"""False-positive rate with an honest interval."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

from pydantic import BaseModel

from audit.schema import Verdict
from cache import language

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
    """False-positive rate of served hits in one group."""

    false_positives: int
    """Hits labelled false positive."""
    labelled: int
    """Hits labelled correct or false positive (uncertain and error are left out)."""
    rate: float | None
    """false_positives / labelled (None with no labels)."""
    lower: float
    """Wilson 95% lower bound."""
    upper: float
    """Wilson 95% upper bound."""


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
    verdicts: Iterable[Verdict], *, shadow: bool = False, tenant: str | None = None
) -> FPRate:
    """The FP rate of served hits (near-misses are not served, so not counted), or with
    ``shadow`` of the hits shadow mode would have served; ``tenant``'s feedback counted
    (``effective``)."""
    served = [
        v
        for v in effective(verdicts, tenant=tenant)
        if not v.job.near_miss and not v.job.admission and v.job.shadow == shadow
    ]
    fp = sum(v.verdict == "false_positive" for v in served)
    labelled = fp + sum(v.verdict == "correct" for v in served)
    lower, upper = wilson(fp, labelled)
    return FPRate(
        false_positives=fp,
        labelled=labelled,
        rate=fp / labelled if labelled else None,
        lower=lower,
        upper=upper,
    )


def cohort(verdict: Verdict) -> dict[str, str]:
    """The cohorts a verdict belongs to: model, similarity band, prompt-length bucket,
    language of the new prompt and judge. Every value but the model's (an operator's alias)
    comes from a small fixed set, so each can be a metric label: 21 similarity bands, 3
    lengths, 12 languages with ``other`` and ``und`` (``cache.language.label``), the judge's
    kind without its version and model (``llm``, ``contrast``...; ``review``, ``feedback``)."""
    band = math.floor(min(1.0, max(0.0, verdict.job.similarity)) * 20) / 20
    length = len(verdict.job.new_prompt)
    bucket = "short" if length < 40 else "medium" if length < 160 else "long"
    return {
        "model": verdict.job.model,
        "similarity": f"{band:.2f}-{band + 0.05:.2f}",
        "length": bucket,
        "language": language.label(language.detect(verdict.job.new_prompt)),
        "judge": (verdict.judge or verdict.source).split("/")[0],
    }


class FPBreakdown(BaseModel):
    """The FP rate of a window's verdicts, cut every way an operator asks for it."""

    window_s: int
    """The window, in seconds."""
    overall: FPRate
    """All served hits."""
    namespaces: dict[str, FPRate]
    """Per namespace."""
    tenants: dict[str, FPRate]
    """Per tenant, over its own hits: the one rate its apps' feedback counts in."""
    shadow: dict[str, FPRate]
    """Shadow mode: the rate the would-be hits would have had if served (namespaces that had
    any)."""
    cohorts: dict[str, dict[str, FPRate]]
    """Per cohort dimension (model, similarity band, prompt length), per value."""


def fp_breakdown(verdicts: Sequence[Verdict], window_s: int) -> FPBreakdown:
    """The breakdown of ``verdicts`` (those of the last ``window_s`` seconds)."""
    groups: dict[str, dict[str, list[Verdict]]] = defaultdict(lambda: defaultdict(list))
    by_namespace: dict[str, list[Verdict]] = defaultdict(list)
    by_tenant: dict[str, list[Verdict]] = defaultdict(list)
    for item in verdicts:
        by_namespace[item.job.namespace].append(item)
        by_tenant[item.job.tenant].append(item)
        for dimension, value in cohort(item).items():
            groups[dimension][value].append(item)
    return FPBreakdown(
        window_s=window_s,
        overall=fp_rate(verdicts),
        namespaces={ns: fp_rate(v) for ns, v in sorted(by_namespace.items())},
        tenants={t: fp_rate(v, tenant=t) for t, v in sorted(by_tenant.items())},
        shadow={
            ns: fp_rate(v, shadow=True)
            for ns, v in sorted(by_namespace.items())
            if any(item.job.shadow for item in v)
        },
        cohorts={
            dimension: {value: fp_rate(v) for value, v in sorted(values.items())}
            for dimension, values in sorted(groups.items())
        },
    )
