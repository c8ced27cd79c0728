"""The verifier release gate: may a candidate verifier replace the model in force?

Every cohort (product, kind, language, length, and ``all``) with at least ``min_cohort``
pairs is gated, at each model's own operating point (its card's threshold) on the same
pairs, the same floor and bar:
- the FP share of served hits <= ``max_fp`` (cohorts with both labels), and the recall of
  label-1 pairs >= ``min_recall`` (cohorts with positives);
- against the model in force, no gated cohort may get worse by more than ``tolerance``: FP
  share (or, in a cohort of traps alone, the share of traps served) up, recall down.
Smaller cohorts are reported, not gated. Any gated cohort failing refuses the candidate.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel

from audit.training.metrics import Metrics

GATED_FIELDS = ("product", "kind", "language", "length")
"""Cohort fields the gate reads (``source`` is reported only)."""


class GateLimits(BaseModel):
    """What a candidate must meet."""

    max_fp: float = 0.05
    """Highest FP share of served hits a gated cohort may have."""
    min_recall: float = 0.5
    """Lowest recall of label-1 pairs a gated cohort may have."""
    min_cohort: int = 20
    """Pairs a cohort needs to be gated."""
    tolerance: float = 0.02
    """How much worse than the model in force a gated cohort may get."""


class GateResult(BaseModel):
    """The gate's decision."""

    gated: list[str]
    """Cohorts gated."""
    failures: dict[str, list[str]]
    """Per failing cohort, why (empty: the candidate passes)."""

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def exit_status(self) -> int:
        return 0 if self.passed else 1

    def notes(self) -> dict[str, str]:
        """Per cohort what the gate said of it: why it failed, or ``gated``."""
        found = {name: "; ".join(problems) for name, problems in self.failures.items()}
        found.update({name: "gated" for name in self.gated if name not in found})
        return found

    @property
    def verdict(self) -> str:
        """The decision in one line."""
        failing = ", ".join(self.failures)
        return "passed" if self.passed else f"REFUSED: gated cohorts failing: {failing}"


def _gated(name: str, metrics: Metrics, limits: GateLimits) -> bool:
    field = name.split("=", 1)[0]
    return (name == "all" or field in GATED_FIELDS) and metrics.pairs >= limits.min_cohort


def _limits(m: Metrics, limits: GateLimits) -> list[str]:
    problems: list[str] = []
    both = 0 < m.positives < m.pairs
    if both and m.fp_share is not None and m.fp_share > limits.max_fp:
        problems.append(f"FP share {m.fp_share:.3f} > {limits.max_fp:.3f}")
    if m.recall is not None and m.recall < limits.min_recall:
        problems.append(f"recall {m.recall:.3f} < {limits.min_recall:.3f}")
    return problems


def regressions(m: Metrics, old: Metrics, tolerance: float) -> list[str]:
    problems: list[str] = []
    checks = [
        ("FP share", m.fp_share, old.fp_share, 1)
        if 0 < m.positives < m.pairs
        else ("traps served", m.trap_pass, old.trap_pass, 1),
        ("recall", m.recall, old.recall, -1),
    ]
    for label, new, before, worse in checks:
        if new is None or before is None:
            continue
        if (new - before) * worse > tolerance:
            problems.append(f"{label} {new:.3f} regressed from {before:.3f}")
    return problems


def check(
    candidate: Mapping[str, Metrics],
    limits: GateLimits,
    in_force: Mapping[str, Metrics] | None = None,
) -> GateResult:
    """The decision on ``candidate``'s cohort metrics (against ``in_force``'s, if given)."""
    gated = [name for name, m in candidate.items() if _gated(name, m, limits)]
    failures: dict[str, list[str]] = {}
    for name in gated:
        problems = _limits(candidate[name], limits)
        if in_force is not None and name in in_force:
            problems += regressions(candidate[name], in_force[name], limits.tolerance)
        if problems:
            failures[name] = problems
    return GateResult(gated=gated, failures=failures)
