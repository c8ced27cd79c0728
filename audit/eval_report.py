"""``vetcache eval``'s output: the text table and the JSON document of a ``Report`` and its
``Gate`` (``audit.evaluate``), and the JSON read back."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from audit.evaluate import CohortStats, Gate, Report, ThresholdStats, gated_margin, report_rows

KEY_THRESHOLDS = (0.80, 0.85, 0.90, 0.95)
"""Thresholds shown in the text table when the sweep has them (all are in the JSON)."""


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
        margin = gated_margin(by_name[name], gate.gate_single_class)
        kind = "vs_pool" if by_name[name].single_class else "margin"
        lines.append(f"FAIL {name}: {kind} {_number(margin, signed=True)} < {gate.min_margin:g}")
    if gate.missing is not None:
        label = 1 if gate.missing == "positives" else 0
        lines.append(
            f"verdict: CANNOT GATE: no {gate.missing} (label-{label} pairs) in the file, so "
            f"no margin to compare with --min-margin {gate.min_margin:g} "
            f"(exit {gate.exit_status})"
        )
    elif gate.failing:
        lines.append(
            f"verdict: FAIL: {len(gate.failing)} of {gate.gated} gated margin(s) "
            f"below --min-margin {gate.min_margin:g}"
        )
    else:
        lines.append(f"verdict: PASS: all {gate.gated} gated margin(s) >= {gate.min_margin:g}")
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
