"""``vetcache eval``: does an embedding model separate same-answer pairs from different-answer
pairs well enough to ship? A CI gate for embedder releases.

    vetcache eval --pairs FILE [--model M] [--min-margin 0.18] [--thresholds 0.80,0.85,...]
                  [--cohort-depth 1] [--gate-single-class] [--format text|json]

Input, one row per line, TSV with a header row (``.tsv``) or JSON objects (``.jsonl``,
``.json``; any other extension: JSONL when the first non-blank character is ``{``, else TSV):

- pair rows: ``text_a`` (the cached prompt), ``text_b`` (the new prompt), ``label`` (1: the
  cached answer serves the new prompt, 0: it does not);
- triplet rows: ``query``, ``positive``, ``negative``: the pairs (query, positive) labelled 1
  and (query, negative) labelled 0.

The cohort of a row is its ``category`` column (else ``cohort``; neither or empty: ``all``),
cut to its first ``--cohort-depth`` "/"-separated segments (0: the full value). The default
depth is 1, so ``negation/minimal`` and ``negation/reworded`` form the cohort ``negation``:
one row per trap type. On fow_cache no depth gives a cohort both classes (every category there
is all label 0, like ``negation``, or all label 1, like ``paraphrase``), so its per-cohort
numbers are the single-class margins described below, and the gate rests on the overall
margin; depth 1 keeps that table short and readable (the full value splits each trap in
minimal/reworded/ambiguous variants that say little more).

Per cohort and overall: positives and negatives, their mean cosine similarity, and the margin
``mean_pos - mean_neg``; for every threshold ``t`` of the sweep, the hit rate (share of pairs
with similarity >= t), the FP share (label-0 pairs among those hits; None without hits) and
the recall of positives. A cohort with one class has no margin (n/a); it shows instead
``vs_pool``, its margin against the other class pooled over the whole file (for a trap cohort:
overall mean_pos - its mean_neg), which gates only with ``--gate-single-class``.

Exit status: 0 when every gated margin (each cohort with both classes, and the overall one) is
>= ``--min-margin``; 1 when one is below; 2 on bad input (every malformed row is listed as
``FILE:LINE: problem``, physical 1-based lines, the TSV header being line 1), a model that
cannot be loaded, or bad usage.

The file format and its reading live in ``audit.pairs`` (``load_pairs`` -> ``Pair`` rows,
shared with ``vetcache tune --pairs``). Pure parts for tests without a model:
``score(pairs, similarities)`` -> ``Report``, ``check_gate`` -> ``Gate``, ``render_text`` /
``render_json``. ``embed_similarities`` runs the embedder; ``run``/``main`` wire them for the
CLI (``add_arguments`` + ``main``).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import dataclasses
import json
import math
import sys
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Any, TextIO

from audit.errors import InputError
from audit.pairs import DEFAULT_COHORT_DEPTH, Pair, embed_similarities, load_pairs
from cache import CacheSettings
from cache.embedder import BUNDLED_MODEL
from cache.errors import EmbedderError
from cache.settings import EMBEDDING_BACKENDS

OVERALL = "(overall)"
"""Name of the all-pairs row (parenthesized so no category can collide with it)."""
DEFAULT_MIN_MARGIN = 0.18
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.70, 0.75, *(round(0.80 + i / 100, 2) for i in range(20)))
KEY_THRESHOLDS = (0.80, 0.85, 0.90, 0.95)
"""Thresholds shown in the text table when the sweep has them (all are in the JSON)."""
MAX_ERRORS_SHOWN = 20
TOLERANCE = 1e-9
"""A margin this close under the minimum passes (0.98 - 0.80 is 0.17999999999999994)."""


# --- scoring -------------------------------------------------------------------------------


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

    @property
    def passed(self) -> bool:
        return not self.failing

    @property
    def exit_status(self) -> int:
        return 0 if self.passed else 1


def report_rows(report: Report) -> tuple[CohortStats, ...]:
    """The cohorts, then the overall row unless one cohort holds every pair."""
    if len(report.cohorts) == 1:
        return report.cohorts
    return (*report.cohorts, report.overall)


def _gated_margin(stats: CohortStats, gate_single_class: bool) -> float | None:
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
        margin = _gated_margin(stats, gate_single_class)
        if margin is None:
            continue
        gated += 1
        if margin + TOLERANCE < min_margin:
            failing.append(stats.name)
    single = tuple(s.name for s in report_rows(report) if s.single_class)
    return Gate(min_margin, gate_single_class, tuple(failing), single, gated)


# --- output --------------------------------------------------------------------------------


def key_thresholds(thresholds: Sequence[float]) -> tuple[float, ...]:
    """The thresholds the text table shows: all of a sweep of up to four, else those of
    0.80, 0.85, 0.90, 0.95 it has, else four spread over it."""
    if len(thresholds) <= 4:
        return tuple(thresholds)
    keys = tuple(t for t in thresholds if any(math.isclose(t, k) for k in KEY_THRESHOLDS))
    if keys:
        return keys
    step = (len(thresholds) - 1) / 3
    return tuple(thresholds[round(i * step)] for i in range(4))


def _threshold(value: float) -> str:
    short = f"{value:.2f}"
    return short if float(short) == value else f"{value:g}"


def _number(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _row(stats: CohortStats, keys: Sequence[float]) -> list[str]:
    cells = [
        stats.name,
        str(stats.n_pos),
        str(stats.n_neg),
        _number(stats.mean_pos),
        _number(stats.mean_neg),
        _number(stats.margin, signed=True),
        "-" if stats.pooled_margin is None else _number(stats.pooled_margin, signed=True),
    ]
    by_threshold = {point.threshold: point for point in stats.sweep}
    for threshold in keys:
        point = by_threshold[threshold]
        cells += [_percent(point.hit_rate), _percent(point.fp_share)]
    return cells


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def _gate_lines(report: Report, gate: Gate) -> list[str]:
    lines: list[str] = []
    if gate.single_class:
        how = "gated on vs_pool" if gate.gate_single_class else "not gated"
        lines.append(
            f"note: margin n/a for {len(gate.single_class)} single-class cohort(s) ({how}): "
            + ", ".join(gate.single_class)
        )
    by_name = {s.name: s for s in report_rows(report)}
    for name in gate.failing:
        margin = _gated_margin(by_name[name], gate.gate_single_class)
        kind = "vs_pool" if by_name[name].single_class else "margin"
        lines.append(f"FAIL {name}: {kind} {_number(margin, signed=True)} < {gate.min_margin:g}")
    if gate.failing:
        lines.append(
            f"verdict: FAIL: {len(gate.failing)} of {gate.gated} gated margin(s) "
            f"below --min-margin {gate.min_margin:g}"
        )
    elif gate.gated:
        lines.append(f"verdict: PASS: all {gate.gated} gated margin(s) >= {gate.min_margin:g}")
    else:
        lines.append("verdict: PASS, but vacuous: no cohort has both positives and negatives")
    return lines


def render_text(report: Report, gate: Gate, *, title: str = "") -> str:
    """The table (one row per cohort, then the overall row), failures and the verdict."""
    keys = key_thresholds(report.thresholds)
    header = ["cohort", "n_pos", "n_neg", "mean_pos", "mean_neg", "margin", "vs_pool"]
    for threshold in keys:
        header += [f"hit@{_threshold(threshold)}", f"fp@{_threshold(threshold)}"]
    table = [header] + [_row(s, keys) for s in report_rows(report)]
    lines = [title] if title else []
    lines += _table(table)
    lines.append(
        "hit@t: share of pairs with similarity >= t; fp@t: share of those hits labelled 0; "
        "vs_pool: a single-class cohort's margin against the other class of the whole file"
    )
    return "\n".join(lines + _gate_lines(report, gate)) + "\n"


def report_to_dict(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data (``report_from_dict`` reads it back)."""
    return dataclasses.asdict(report)


def _cohort_from_dict(data: Mapping[str, Any]) -> CohortStats:
    fields = {k: v for k, v in data.items() if k != "sweep"}
    sweep = tuple(ThresholdStats(**point) for point in data["sweep"])
    return CohortStats(**fields, sweep=sweep)


def report_from_dict(data: Mapping[str, Any]) -> Report:
    """The ``Report`` of ``report_to_dict`` output (extra keys, like ``gate``, are ignored)."""
    return Report(
        thresholds=tuple(data["thresholds"]),
        cohorts=tuple(_cohort_from_dict(c) for c in data["cohorts"]),
        overall=_cohort_from_dict(data["overall"]),
    )


def gate_to_dict(gate: Gate) -> dict[str, Any]:
    return {
        **dataclasses.asdict(gate),
        "passed": gate.passed,
        "exit_status": gate.exit_status,
    }


def render_json(report: Report, gate: Gate, **meta: Any) -> str:
    """One JSON object: ``meta`` (source, model...), the report and the gate."""
    return json.dumps({**meta, **report_to_dict(report), "gate": gate_to_dict(gate)}, indent=2)


# --- running it ----------------------------------------------------------------------------

Similarities = Callable[[Sequence[Pair], CacheSettings], Awaitable[tuple[list[float], str]]]
"""(pairs, embedder settings) -> (similarity of each pair, embedder fingerprint)."""


def _print_errors(errors: Sequence[str], err: TextIO) -> None:
    for line in errors[:MAX_ERRORS_SHOWN]:
        print(line, file=err)
    if len(errors) > MAX_ERRORS_SHOWN:
        print(f"... and {len(errors) - MAX_ERRORS_SHOWN} more", file=err)
    print("vetcache eval: bad input, nothing computed", file=err)


def _output(
    args: argparse.Namespace, pairs: Sequence[Pair], report: Report, gate: Gate, model: str
) -> str:
    if args.format == "json":
        meta = {
            "source": str(args.pairs),
            "model": args.model,
            "backend": args.backend,
            "fingerprint": model,
            "cohort_depth": args.cohort_depth,
            "pairs": len(pairs),
        }
        return render_json(report, gate, **meta) + "\n"
    title = (
        f"vetcache eval: {len(pairs)} pairs from {args.pairs}; model {args.model} ({model}); "
        f"cohort depth {args.cohort_depth}"
    )
    return render_text(report, gate, title=title)


async def run(
    args: argparse.Namespace,
    *,
    similarities: Similarities = embed_similarities,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Parse, embed, score, print; the exit status (0 pass, 1 a margin too small, 2 bad
    input or model). ``args`` as ``add_arguments`` defines them."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        pairs = load_pairs(args.pairs, cohort_depth=args.cohort_depth)
    except InputError as exc:
        _print_errors(exc.errors, err)
        return 2
    try:
        embedder = CacheSettings(embedding_model=args.model, embedding_backend=args.backend)
        values, fingerprint = await similarities(pairs, embedder)
    except EmbedderError as exc:
        print(f"vetcache eval: {exc}", file=err)
        return 2
    report = score(pairs, values, thresholds=args.thresholds)
    gate = check_gate(report, min_margin=args.min_margin, gate_single_class=args.gate_single_class)
    out.write(_output(args, pairs, report, gate, fingerprint))
    return gate.exit_status


def main(args: argparse.Namespace) -> int:
    """The ``vetcache eval`` command (after ``add_arguments``): its exit status."""
    return asyncio.run(run(args))


def parse_thresholds(value: str) -> tuple[float, ...]:
    """``"0.80,0.85"`` -> (0.8, 0.85), sorted, each in [-1, 1]."""
    try:
        thresholds = {float(part) for part in value.split(",") if part.strip()}
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of numbers: {value!r}"
        ) from None
    if not thresholds or not all(-1.0 <= t <= 1.0 for t in thresholds):
        raise argparse.ArgumentTypeError(f"thresholds must be numbers in [-1, 1]: {value!r}")
    return tuple(sorted(thresholds))


def _margin(value: str) -> float:
    try:
        margin = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not math.isfinite(margin):
        raise argparse.ArgumentTypeError(f"not a finite number: {value!r}")
    return margin


def _depth(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"not a whole number >= 0: {value!r}")
    return int(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``vetcache eval``."""
    parser.add_argument(
        "--pairs", type=Path, required=True, metavar="FILE", help="labelled pairs or triplets"
    )
    parser.add_argument(
        "--model",
        default=BUNDLED_MODEL,
        help=f"sentence-transformers model name or path (default {BUNDLED_MODEL})",
    )
    parser.add_argument(
        "--backend",
        choices=EMBEDDING_BACKENDS,
        default=CacheSettings().embedding_backend,
        help="how the model runs, as cache.embedding_backend (default: the gateway's, "
        f"{CacheSettings().embedding_backend})",
    )
    parser.add_argument(
        "--min-margin",
        type=_margin,
        default=DEFAULT_MIN_MARGIN,
        help=f"lowest acceptable mean_pos - mean_neg (default {DEFAULT_MIN_MARGIN})",
    )
    parser.add_argument(
        "--thresholds",
        type=parse_thresholds,
        default=DEFAULT_THRESHOLDS,
        metavar="T1,T2,...",
        help="similarity thresholds to sweep (default 0.70, 0.75, 0.80..0.99)",
    )
    parser.add_argument(
        "--cohort-depth",
        type=_depth,
        default=DEFAULT_COHORT_DEPTH,
        metavar="N",
        help="group by the first N '/'-segments of the category (0: all; default 1)",
    )
    parser.add_argument(
        "--gate-single-class",
        action="store_true",
        help="also fail single-class cohorts whose margin against the pooled other class "
        "is below --min-margin",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
