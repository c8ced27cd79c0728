"""Does an embedding model separate same-answer pairs from different-answer pairs well
enough to ship? The scoring and the gate behind ``vetcache eval`` (the command is
``proxy.commands.evaluate``; the tables ``audit.eval_report``).

The cohort of a pair is its ``category`` (``audit.pairs``), cut to its first
``cohort_depth`` "/"-separated segments. Per cohort and overall: positives and negatives,
their mean cosine similarity, and the margin ``mean_pos - mean_neg``; for every threshold
``t`` of the sweep, the hit rate (share of pairs with similarity >= t), the FP share
(label-0 pairs among those hits; None without hits) and the recall of positives. A cohort
with one class has no margin (n/a); it shows instead ``vs_pool``, its margin against the
other class pooled over the whole file (for a trap cohort: overall mean_pos - its
mean_neg), which gates only with ``gate_single_class``. On fow_cache every category is all
label 0 (like ``negation``) or all label 1 (like ``paraphrase``), so its per-cohort numbers
are single-class margins and the gate rests on the overall margin.

The gate passes when every gated margin (each cohort with both classes, and the overall
one) is >= ``min_margin``. A file without positives or without negatives (the
hard-negative export is all label 0) has no margin anywhere: the gate cannot be checked,
which is a failure of its own (exit status ``EXIT_CANNOT_GATE``), never a vacuous pass.
Exit statuses: ``EXIT_PASS`` 0, ``EXIT_BELOW_MARGIN`` 1, 2 bad input (the command's),
``EXIT_CANNOT_GATE`` 3. Pure: ``score(pairs, similarities)`` -> ``Report``,
``check_gate`` -> ``Gate``; no model needed.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean

from audit.pairs import Pair
from audit.tune import DEFAULT_THRESHOLDS

OVERALL = "(overall)"
"""Name of the all-pairs row (parenthesized so no category can collide with it)."""
DEFAULT_MIN_MARGIN = 0.18
"""The release gate's margin (DESIGN.md); the sweep is ``vetcache tune``'s own grid,
``audit.tune.DEFAULT_THRESHOLDS``."""
EXIT_PASS = 0
EXIT_BELOW_MARGIN = 1
EXIT_CANNOT_GATE = 3
"""A gated cohort (the whole file) has no positives or no negatives: nothing to compare."""
TOLERANCE = 1e-9
"""A margin this close under the minimum passes (0.98 - 0.80 is 0.17999999999999994)."""


@dataclass(frozen=True)
class ThresholdStats:
    """What a cache with this threshold would do on a cohort's pairs."""

    threshold: float
    hits: int
    """Pairs with similarity >= threshold."""
    negative_hits: int
    """Label-0 pairs among them (false hits)."""
    hit_rate: float | None
    """hits / pairs."""
    fp_share: float | None
    """negative_hits / hits; None without hits."""
    recall: float | None
    """Positive hits / positives; None without positives."""


@dataclass(frozen=True)
class CohortStats:
    name: str
    n_pos: int
    n_neg: int
    mean_pos: float | None
    mean_neg: float | None
    margin: float | None
    """mean_pos - mean_neg; None unless the cohort has both classes."""
    pooled_margin: float | None
    """Single-class cohorts only: the margin against the other class of the whole file."""
    sweep: tuple[ThresholdStats, ...]

    @property
    def single_class(self) -> bool:
        return self.margin is None


@dataclass(frozen=True)
class Report:
    thresholds: tuple[float, ...]
    cohorts: tuple[CohortStats, ...]
    """Sorted by name."""
    overall: CohortStats


def _at_least(ordered: Sequence[float], threshold: float) -> int:
    return len(ordered) - bisect.bisect_left(ordered, threshold)


def _threshold_stats(
    threshold: float, positives: Sequence[float], negatives: Sequence[float]
) -> ThresholdStats:
    positive_hits = _at_least(positives, threshold)
    negative_hits = _at_least(negatives, threshold)
    hits = positive_hits + negative_hits
    total = len(positives) + len(negatives)
    return ThresholdStats(
        threshold=threshold,
        hits=hits,
        negative_hits=negative_hits,
        hit_rate=hits / total if total else None,
        fp_share=negative_hits / hits if hits else None,
        recall=positive_hits / len(positives) if positives else None,
    )


def _pooled_margin(
    mean_pos: float | None, mean_neg: float | None, pool: CohortStats | None
) -> float | None:
    if pool is None:
        return None
    if mean_pos is None and mean_neg is not None and pool.mean_pos is not None:
        return pool.mean_pos - mean_neg
    if mean_neg is None and mean_pos is not None and pool.mean_neg is not None:
        return mean_pos - pool.mean_neg
    return None


def _cohort_stats(
    name: str,
    positives: list[float],
    negatives: list[float],
    thresholds: Sequence[float],
    pool: CohortStats | None,
) -> CohortStats:
    positives, negatives = sorted(positives), sorted(negatives)
    mean_pos = fmean(positives) if positives else None
    mean_neg = fmean(negatives) if negatives else None
    margin = mean_pos - mean_neg if mean_pos is not None and mean_neg is not None else None
    return CohortStats(
        name=name,
        n_pos=len(positives),
        n_neg=len(negatives),
        mean_pos=mean_pos,
        mean_neg=mean_neg,
        margin=margin,
        pooled_margin=None if margin is not None else _pooled_margin(mean_pos, mean_neg, pool),
        sweep=tuple(_threshold_stats(t, positives, negatives) for t in thresholds),
    )


def score(
    pairs: Sequence[Pair],
    similarities: Sequence[float],
    *,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> Report:
    """Per-cohort and overall statistics of ``similarities[i]``, the similarity of
    ``pairs[i]``."""
    if len(pairs) != len(similarities):
        raise ValueError(f"{len(pairs)} pairs but {len(similarities)} similarities")
    sweep = tuple(sorted(set(thresholds)))
    groups: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for pair, similarity in zip(pairs, similarities, strict=True):
        groups[pair.cohort][0 if pair.label == 1 else 1].append(float(similarity))
    positives = [s for group in groups.values() for s in group[0]]
    negatives = [s for group in groups.values() for s in group[1]]
    overall = _cohort_stats(OVERALL, positives, negatives, sweep, None)
    cohorts = tuple(
        _cohort_stats(name, pos, neg, sweep, overall) for name, (pos, neg) in sorted(groups.items())
    )
    return Report(thresholds=sweep, cohorts=cohorts, overall=overall)


# --- the gate ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gate:
    min_margin: float
    gate_single_class: bool
    failing: tuple[str, ...]
    """Gated cohorts (``OVERALL`` included) whose margin is below ``min_margin``."""
    single_class: tuple[str, ...]
    """Cohorts with one class: no margin (gated on ``pooled_margin`` only with
    ``gate_single_class``)."""
    gated: int
    """How many margins were compared with ``min_margin``."""
    missing: str | None = None
    """``"positives"`` or ``"negatives"`` when the whole file lacks that class (no margin
    can be gated); else None."""

    @property
    def passed(self) -> bool:
        return not self.failing and self.missing is None

    @property
    def exit_status(self) -> int:
        if self.missing is not None:
            return EXIT_CANNOT_GATE
        return EXIT_BELOW_MARGIN if self.failing else EXIT_PASS


def report_rows(report: Report) -> tuple[CohortStats, ...]:
    """The cohorts, then the overall row unless one cohort holds every pair."""
    if len(report.cohorts) == 1:
        return report.cohorts
    return (*report.cohorts, report.overall)


def gated_margin(stats: CohortStats, gate_single_class: bool) -> float | None:
    if stats.margin is not None:
        return stats.margin
    return stats.pooled_margin if gate_single_class else None


def check_gate(
    report: Report,
    *,
    min_margin: float = DEFAULT_MIN_MARGIN,
    gate_single_class: bool = False,
) -> Gate:
    """Which margins are below ``min_margin``: each cohort's, then the overall one (the
    rows of ``report_rows``)."""
    failing: list[str] = []
    gated = 0
    for stats in report_rows(report):
        margin = gated_margin(stats, gate_single_class)
        if margin is None:
            continue
        gated += 1
        if margin + TOLERANCE < min_margin:
            failing.append(stats.name)
    single = tuple(s.name for s in report_rows(report) if s.single_class)
    missing = _missing_class(report.overall)
    return Gate(min_margin, gate_single_class, tuple(failing), single, gated, missing)


def _missing_class(overall: CohortStats) -> str | None:
    """The class the whole file lacks (the overall row is always gated)."""
    if not overall.n_pos:
        return "positives"
    return None if overall.n_neg else "negatives"
