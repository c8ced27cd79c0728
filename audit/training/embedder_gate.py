"""The embedder release gate: may a candidate embedding model replace the model in force?

Every cohort (product, kind, language, length, and ``all``) with at least ``min_cohort``
pairs is gated, each model measured on the same pairs at the same operating threshold
(``audit.training.embedder_metrics``):
- its margin (mean similarity of same-answer pairs minus that of traps) >= ``min_margin``
  (0.18, as ``vetcache eval``: cohorts with both labels);
- against the model in force, no gated cohort may get worse by more than ``tolerance``:
  margin down, FP share of served hits up (or, in a cohort of traps alone, the share of
  traps served), recall down.
Smaller cohorts are reported, not gated. Any gated cohort failing refuses the candidate.
The decision is the verifier gate's ``GateResult``.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel

from audit.evaluate import DEFAULT_MIN_MARGIN, TOLERANCE
from audit.training.embedder_metrics import EmbedderMetrics
from audit.training.gate import GATED_FIELDS, GateResult, regressions


class EmbedderGateLimits(BaseModel):
    """What a candidate embedder must meet."""

    min_margin: float = DEFAULT_MIN_MARGIN
    """Lowest margin a gated cohort with both labels may have."""
    min_cohort: int = 20
    """Pairs a cohort needs to be gated."""
    tolerance: float = 0.02
    """How much worse than the model in force a gated cohort may get."""


def _gated(name: str, metrics: EmbedderMetrics, limits: EmbedderGateLimits) -> bool:
    field = name.split("=", 1)[0]
    return (name == "all" or field in GATED_FIELDS) and metrics.pairs >= limits.min_cohort


def _problems(
    m: EmbedderMetrics, limits: EmbedderGateLimits, old: EmbedderMetrics | None
) -> list[str]:
    problems: list[str] = []
    if m.margin is not None and m.margin + TOLERANCE < limits.min_margin:
        problems.append(f"margin {m.margin:.3f} < {limits.min_margin:.3f}")
    if old is None:
        return problems
    dropped = None if m.margin is None or old.margin is None else old.margin - m.margin
    if dropped is not None and dropped > limits.tolerance:
        problems.append(f"margin {m.margin:.3f} regressed from {old.margin:.3f}")
    return problems + regressions(m, old, limits.tolerance)


def check(
    candidate: Mapping[str, EmbedderMetrics],
    limits: EmbedderGateLimits,
    in_force: Mapping[str, EmbedderMetrics] | None = None,
) -> GateResult:
    """The decision on ``candidate``'s cohort metrics (against ``in_force``'s, if given)."""
    gated = [name for name, m in candidate.items() if _gated(name, m, limits)]
    failures: dict[str, list[str]] = {}
    for name in gated:
        old = None if in_force is None else in_force.get(name)
        if problems := _problems(candidate[name], limits, old):
            failures[name] = problems
    return GateResult(gated=gated, failures=failures)
