"""Threshold tuning from labels: threshold -> estimated hit rate, FP rate and its bound.

Inputs, per namespace:
- labels: audited hits and near-misses with their effective label (a review beats feedback
  beats the judge; ``uncertain`` and ``error`` are left out), and optionally labelled pairs
  from a file. Hits and near-misses are sampled at different rates, so each label is
  weighted by the inverse of its sampling rate (burn-in is ignored in the weights: it
  over-samples new entries, which this estimate treats as ordinary hits). Pair labels
  weigh 1.
- the distribution of best-candidate similarities over *all* lookups (the ledger keeps an
  hourly 0.01-bin histogram per namespace), for the hit rate.

At threshold t: hit rate = lookups whose best candidate scored >= t / all lookups; FP rate =
weighted false positives among labels with similarity >= t; its 95% interval is Wilson's on
the Kish effective sample size (n_eff = (sum w)^2 / sum w^2), which is the plain Wilson
interval when every weight is equal. The recommendation is the lowest threshold of the sweep
whose upper bound is under the target (with zero false positives, Wilson needs about
z^2 (1 - target) / target labels above the line: 73 for 5%) *and that has evidence where it
goes*: a threshold below the current one opens the band [t, current), which must hold at
least ``min_band_labels`` labels; and no move down lies below the sweep step that holds the
lowest labelled similarity. An upper bound from labels at 0.97 says nothing about
prompts at 0.80, so clean labels high up never pull the threshold down to the sweep's floor.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, Field

from audit.estimate import weight
from audit.ledgers.base import Ledger, similarity_bin
from audit.schema import Verdict
from audit.settings import AuditSettings
from audit.stats import Z95, effective, serving_verdicts, wilson

LabelKind = Literal["hit", "near_miss", "pair"]
DEFAULT_THRESHOLDS = tuple(round(0.70 + i / 100, 2) for i in range(30))
"""0.70 .. 0.99 in steps of 0.01."""
DEFAULT_MIN_BAND_LABELS = 10
"""Labels a move down must have in the band it opens."""


class TuneLabel(BaseModel):
    """One labelled similarity."""

    similarity: float
    false_positive: bool
    weight: float = Field(gt=0)
    kind: LabelKind


class TuneRow(BaseModel):
    """The estimate at one threshold."""

    threshold: float
    hit_rate: float | None
    """Share of lookups that would hit (None without lookup data)."""
    fp_rate: float | None
    """Weighted false-positive rate among labels at or above the threshold."""
    fp_lower: float
    fp_upper: float
    labels: int
    """Labels at or above the threshold."""
    false_positives: int
    """Of which false positives."""
    effective_n: float
    """Kish effective sample size behind the interval."""


class TuneReport(BaseModel):
    """What ``vetcache tune`` prints and ``GET /admin/tune`` returns."""

    namespace: str | None
    target_fp: float
    interval: str = "Wilson 95% on the Kish effective sample size"
    current_threshold: float | None = None
    recommended: float | None
    """Lowest threshold whose FP upper bound is under the target and that has evidence
    where it goes (see ``min_band_labels``); None if none is."""
    labels_in_band: int | None = None
    """Labels between the current and the recommended threshold (the band the move opens,
    or closes when it goes up); None without a current threshold or a recommendation."""
    min_band_labels: int = DEFAULT_MIN_BAND_LABELS
    """Labels a move down must have in the band [recommended, current) it opens."""
    reason: str
    lookups: int
    """Lookups behind the hit rates."""
    labels: int
    """Labels in all."""
    rows: list[TuneRow]


def labels_from_verdicts(
    verdicts: Iterable[Verdict], settings: AuditSettings, namespace: str | None = None
) -> list[TuneLabel]:
    """One weighted label per audited job (effective label; uncertain and error dropped)."""
    found = []
    for verdict in effective(serving_verdicts(verdicts)):
        job = verdict.job
        if namespace is not None and job.namespace != namespace:
            continue
        if verdict.verdict not in ("correct", "false_positive") or job.admission or job.exact:
            continue  # an admission audit or an exact repeat: no similarity decision to tune
        if job.near_miss:
            rate, kind = settings.near_miss_rate, "near_miss"
        else:
            rate, kind = settings.sample_rate_for(job.namespace), "hit"
        found.append(
            TuneLabel(
                similarity=job.similarity,
                false_positive=verdict.verdict == "false_positive",
                # the probability the job was sampled with, when recorded (burn-in: 1)
                weight=weight(job) if job.sample_p else 1.0 / max(rate, 1e-6),
                kind=kind,
            )
        )
    return found


def row(threshold: float, labels: Sequence[TuneLabel], bins: Mapping[int, int]) -> TuneRow:
    """The estimate at ``threshold``."""
    above = [label for label in labels if label.similarity >= threshold - 1e-9]
    line = similarity_bin(threshold)  # lookups are kept in 0.01 bins: the threshold's own
    weight = sum(label.weight for label in above)
    squares = sum(label.weight**2 for label in above)
    bad = sum(label.weight for label in above if label.false_positive)
    n_eff = weight * weight / squares if squares else 0.0
    rate = bad / weight if weight else None
    lower, upper = wilson((rate or 0.0) * n_eff, n_eff)
    lookups = sum(bins.values())
    hits = sum(count for b, count in bins.items() if b >= line)
    return TuneRow(
        threshold=threshold,
        hit_rate=hits / lookups if lookups else None,
        fp_rate=rate,
        fp_lower=lower,
        fp_upper=upper,
        labels=len(above),
        false_positives=sum(label.false_positive for label in above),
        effective_n=round(n_eff, 2),
    )


def band_labels(labels: Sequence[TuneLabel], low: float, high: float) -> int:
    """Labels with a similarity in [low, high)."""
    return sum(low - 1e-9 <= label.similarity < high - 1e-9 for label in labels)


def _floor(labels: Sequence[TuneLabel], thresholds: Sequence[float]) -> float:
    """The lowest threshold with evidence under it: the sweep step that holds the lowest
    labelled similarity (a recommendation never goes below it)."""
    lowest = min(label.similarity for label in labels)
    under = [t for t in thresholds if t <= lowest + 1e-9]
    return max(under) if under else min(thresholds)


def _choose(
    rows: Sequence[TuneRow],
    labels: Sequence[TuneLabel],
    target_fp: float,
    current: float | None,
    min_band: int,
) -> tuple[TuneRow | None, TuneRow | None]:
    """The recommended row, and the lowest row that met the bound without the evidence
    to go there (to say why the recommendation stops short)."""
    if not labels:
        return None, None
    floor = _floor(labels, [r.threshold for r in rows])
    unfounded = None
    for r in rows:
        if not (r.labels and r.fp_upper < target_fp):
            continue
        # Staying or going up opens nothing; going down (or with no threshold in force
        # yet) must stay where labels are.
        if current is None:
            unfounded_here = r.threshold < floor - 1e-9
        else:
            unfounded_here = r.threshold < current - 1e-9 and (
                r.threshold < floor - 1e-9 or band_labels(labels, r.threshold, current) < min_band
            )
        if unfounded_here:
            unfounded = unfounded or r
            continue
        return r, unfounded
    return None, unfounded


def tune(
    labels: Sequence[TuneLabel],
    bins: Mapping[int, int],
    target_fp: float,
    *,
    namespace: str | None = None,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    current: float | None = None,
    min_band_labels: int = DEFAULT_MIN_BAND_LABELS,
) -> TuneReport:
    """The sweep and the recommendation."""
    rows = [row(t, labels, bins) for t in sorted(thresholds)]
    chosen, unfounded = _choose(rows, labels, target_fp, current, min_band_labels)
    in_band = None
    if chosen is not None and current is not None:
        low, high = sorted((chosen.threshold, current))
        in_band = band_labels(labels, low, high)
    return TuneReport(
        namespace=namespace,
        target_fp=target_fp,
        current_threshold=current,
        recommended=chosen.threshold if chosen else None,
        labels_in_band=in_band,
        min_band_labels=min_band_labels,
        reason=_reason(rows, labels, target_fp, chosen, unfounded, in_band),
        lookups=sum(bins.values()),
        labels=len(labels),
        rows=rows,
    )


def _reason(
    rows: Sequence[TuneRow],
    labels: Sequence[TuneLabel],
    target_fp: float,
    chosen: TuneRow | None,
    unfounded: TuneRow | None,
    in_band: int | None,
) -> str:
    short = ""
    if unfounded is not None:
        short = (
            f"; {unfounded.threshold:.2f} and up meet the bound, but the thresholds below "
            "lack labels in the band they would open"
        )
    if chosen is not None:
        band = "" if in_band is None else f", {in_band} in the band it moves across"
        return (
            f"lowest threshold with evidence whose FP upper bound ({chosen.fp_upper:.3f}) "
            f"is under {target_fp:g}, from {chosen.labels} labels{band}{short}"
        )
    if not labels:
        return "no labels yet: audit more hits (or pass --pairs)"
    if unfounded is not None:
        return f"no move has the evidence it needs{short}"
    most = max(rows, key=lambda r: r.effective_n)
    # Wilson's upper bound for 0 of n is z^2 / (n + z^2): under the target from here.
    needed = math.floor(Z95**2 * (1 - target_fp) / target_fp) + 1
    return (
        f"no threshold's FP upper bound is under {target_fp:g}; at most "
        f"{most.labels} labels lie above any threshold, and even with no false "
        f"positive about {needed} are needed"
    )


def render(report: TuneReport) -> str:
    """The report as a text table."""
    lines = [
        f"namespace {report.namespace or '(all)'}: {report.labels} labels, "
        f"{report.lookups} lookups; FP target {report.target_fp:g} "
        f"(interval: {report.interval})",
        f"{'threshold':>9} {'hit rate':>9} {'FP rate':>8} {'FP upper':>9} {'labels':>7} "
        f"{'FPs':>5} {'n_eff':>7}",
    ]
    for r in report.rows:
        mark = " <- recommended" if r.threshold == report.recommended else ""
        if r.threshold == report.current_threshold:
            mark += " (current)"
        lines.append(
            f"{r.threshold:>9.2f} {_pct(r.hit_rate):>9} {_pct(r.fp_rate):>8} "
            f"{_pct(r.fp_upper):>9} {r.labels:>7} {r.false_positives:>5} {r.effective_n:>7.1f}"
            f"{mark}"
        )
    pick = "none" if report.recommended is None else f"{report.recommended:.2f}"
    if report.labels_in_band is not None:
        pick += f" ({report.labels_in_band} labels between it and the current threshold)"
    lines.append(f"recommended threshold: {pick} ({report.reason})")
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


async def report_from_ledger(
    ledger: Ledger,
    settings: AuditSettings,
    namespace: str,
    target_fp: float,
    *,
    hours: int = 168,
    current: float | None = None,
    extra: Sequence[TuneLabel] = (),
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    min_band_labels: int = DEFAULT_MIN_BAND_LABELS,
) -> TuneReport:
    """The report for ``namespace`` from the verdicts and lookups of the last ``hours``
    (plus ``extra`` labels, e.g. from a pair file)."""
    since = time.time() - hours * 3600
    verdicts = await ledger.query(namespace=namespace, since=since, limit=None)
    labels = labels_from_verdicts(verdicts, settings, namespace) + list(extra)
    bins = await ledger.lookup_bins(namespace, hours)
    return tune(
        labels, bins, target_fp, namespace=namespace, thresholds=thresholds, current=current,
        min_band_labels=min_band_labels,
    )  # fmt: skip


def plot(report: TuneReport, path: str) -> None:
    """Hit rate and FP rate (with its interval) against the threshold, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display here or on servers
    import matplotlib.pyplot as plt

    xs = [r.threshold for r in report.rows]
    figure, axis = plt.subplots(figsize=(8, 4.5), dpi=100)
    axis.plot(xs, [r.hit_rate or 0.0 for r in report.rows], label="hit rate", color="#1f6feb")
    axis.plot(xs, [r.fp_rate or 0.0 for r in report.rows], label="FP rate", color="#b3261e")
    axis.fill_between(
        xs,
        [r.fp_lower for r in report.rows],
        [r.fp_upper for r in report.rows],
        color="#b3261e",
        alpha=0.15,
        label="FP 95% interval",
    )
    axis.axhline(report.target_fp, color="#b3261e", linestyle=":", label="FP target")
    if report.recommended is not None:
        axis.axvline(report.recommended, color="#2da44e", linestyle="--", label="recommended")
    axis.set_xlabel("similarity threshold")
    axis.set_ylim(0, 1)
    axis.set_title(f"vetcache tune: namespace {report.namespace or '(all)'}")
    axis.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
