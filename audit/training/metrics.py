"""How a verifier does on labelled pairs: the FP share of the hits it would let through,
the recall of same-answer pairs, the AUC of its scores; and the operating point.

A pair is *served* when its similarity reaches the floor (else it was never a candidate)
and either its similarity reaches the bar (trusted without the verifier) or its score
reaches the threshold. FP share = served label-0 pairs / served pairs; recall = served
label-1 pairs / label-1 pairs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from pydantic import BaseModel

from audit.training.records import COHORT_FIELDS, TrainingPair


class Scored(BaseModel):
    """One pair as the metrics see it."""

    label: int
    similarity: float
    score: float
    cohorts: dict[str, str]


class Metrics(BaseModel):
    """One group of pairs at one operating point."""

    pairs: int
    """Pairs in the group."""
    positives: int
    """Label-1 pairs."""
    served: int
    """Pairs served at the operating point."""
    false_positives: int
    """Served label-0 pairs."""
    fp_share: float | None
    """false_positives / served (None when nothing is served)."""
    recall: float | None
    """Served label-1 pairs / label-1 pairs (None without positives)."""
    trap_pass: float | None
    """Served label-0 pairs / label-0 pairs (None without negatives): what a cohort of
    traps alone is judged by, where the FP share of its hits is 1 by construction."""
    auc: float | None
    """ROC AUC of the scores (None unless both labels are present)."""


def scored(
    pairs: Sequence[TrainingPair], similarities: Sequence[float], scores: Sequence[float]
) -> list[Scored]:
    """The pairs with their similarities and scores, cohorts by name."""
    return [
        Scored(
            label=pair.label,
            similarity=sim,
            score=score,
            cohorts={field: pair.cohorts.value(field) for field in COHORT_FIELDS},
        )
        for pair, sim, score in zip(pairs, similarities, scores, strict=True)
    ]


def is_served(item: Scored, threshold: float, floor: float, bar: float) -> bool:
    """Whether the gateway serves the pair: ``floor <= sim`` and (``sim >= bar`` or
    ``score >= threshold``)."""
    return item.similarity >= floor and (item.similarity >= bar or item.score >= threshold)


def auc(items: Sequence[Scored]) -> float | None:
    """ROC AUC (ties count half): the Mann-Whitney statistic from average ranks,
    hand-written to keep scikit-learn out of the dependencies for a dozen lines."""
    ordered = sorted(items, key=lambda i: i.score)
    positives = sum(i.label for i in ordered)
    negatives = len(ordered) - positives
    if not positives or not negatives:
        return None
    rank_sum, start = 0.0, 0
    while start < len(ordered):
        end = start
        while end < len(ordered) and ordered[end].score == ordered[start].score:
            end += 1
        average = (start + 1 + end) / 2  # ranks start+1 .. end share their mean
        rank_sum += average * sum(i.label for i in ordered[start:end])
        start = end
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def measure(items: Sequence[Scored], threshold: float, floor: float, bar: float) -> Metrics:
    """The metrics of ``items`` at one operating point."""
    served = [i for i in items if is_served(i, threshold, floor, bar)]
    positives = sum(i.label for i in items)
    negatives = len(items) - positives
    false_positives = sum(1 for i in served if i.label == 0)
    return Metrics(
        pairs=len(items),
        positives=positives,
        served=len(served),
        false_positives=false_positives,
        fp_share=false_positives / len(served) if served else None,
        recall=sum(i.label for i in served) / positives if positives else None,
        trap_pass=false_positives / negatives if negatives else None,
        auc=auc(items),
    )


def by_cohort(
    items: Sequence[Scored], threshold: float, floor: float, bar: float
) -> dict[str, Metrics]:
    """Metrics overall (``all``) and per cohort (``product=billing``, ``kind=negation``...)."""
    return {name: measure(group, threshold, floor, bar) for name, group in cohorts(items).items()}


def cohorts(items: Sequence[Scored]) -> dict[str, list[Scored]]:
    """``items`` overall (``all``) and per cohort (``product=billing``...), sorted by name."""
    groups: dict[str, list[Scored]] = defaultdict(list)
    for item in items:
        groups["all"].append(item)
        for field, value in item.cohorts.items():
            groups[f"{field}={value}"].append(item)
    return {name: groups[name] for name in sorted(groups)}


def operating_point(items: Sequence[Scored], target_fp: float, floor: float) -> float | None:
    """The lowest score threshold at which the FP share of served pairs (similarity >=
    ``floor``, every one verified) is <= ``target_fp``; None when no threshold serving
    anything meets it."""
    candidates = sorted((i for i in items if i.similarity >= floor), key=lambda i: -i.score)
    best: float | None = None
    false_positives = 0
    for index, item in enumerate(candidates):
        served = index + 1
        false_positives += item.label == 0
        last_of_tie = index + 1 == len(candidates) or candidates[index + 1].score < item.score
        if last_of_tie and false_positives / served <= target_fp:
            best = item.score
    return best
