"""How an embedding model does on labelled pairs, per cohort: the margin between the mean
cosine similarity of same-answer pairs and of traps (what ``vetcache eval`` gates at 0.18),
and what a cache would serve at its operating threshold (FP share of served hits, recall).

An embedder's score is its similarity: a pair is served when its similarity reaches the
threshold (``audit.training.metrics`` with threshold, floor and bar all at it).
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import fmean

from audit.training.metrics import Metrics, cohorts, measure, scored
from audit.training.records import TrainingPair


class EmbedderMetrics(Metrics):
    """One group of pairs under one embedder at one threshold."""

    mean_pos: float | None
    """Mean similarity of label-1 pairs (None without any)."""
    mean_neg: float | None
    """Mean similarity of label-0 pairs (None without any)."""
    margin: float | None
    """``mean_pos - mean_neg`` (None unless both labels are present)."""


def _mean(values: Sequence[float]) -> float | None:
    return fmean(values) if values else None


def by_cohort(
    pairs: Sequence[TrainingPair], similarities: Sequence[float], threshold: float
) -> dict[str, EmbedderMetrics]:
    """Per cohort (``all``, ``product=billing``...): margin, FP share and recall at
    ``threshold``."""
    found: dict[str, EmbedderMetrics] = {}
    for name, items in cohorts(scored(pairs, similarities, similarities)).items():
        base = measure(items, threshold, threshold, threshold)
        mean_pos = _mean([i.similarity for i in items if i.label == 1])
        mean_neg = _mean([i.similarity for i in items if i.label == 0])
        margin = None if mean_pos is None or mean_neg is None else mean_pos - mean_neg
        found[name] = EmbedderMetrics(
            **base.model_dump(), mean_pos=mean_pos, mean_neg=mean_neg, margin=margin
        )
    return found


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def table(
    metrics: dict[str, EmbedderMetrics],
    before: dict[str, EmbedderMetrics] | None = None,
    notes: dict[str, str] | None = None,
) -> str:
    """One row per cohort: pairs, margin, FP share and recall (and the model in force's,
    ``before``, beside them; and a note, e.g. why a gated cohort failed)."""
    notes = notes or {}
    width = max([len("cohort"), *map(len, metrics)])
    head = f"{'cohort':<{width}}  {'pairs':>5} {'margin':>6} {'fp_share':>8} {'recall':>6}"
    if before is not None:
        head += f"   {'margin0':>7} {'fp0':>5} {'recall0':>7}"
    lines = [head]
    for name, m in metrics.items():
        line = (
            f"{name:<{width}}  {m.pairs:>5} {_number(m.margin):>6} "
            f"{_number(m.fp_share):>8} {_number(m.recall):>6}"
        )
        if before is not None and name in before:
            b = before[name]
            line += f"   {_number(b.margin):>7} {_number(b.fp_share):>5} {_number(b.recall):>7}"
        lines.append(f"{line}  {notes[name]}" if name in notes else line)
    return "\n".join(lines)
