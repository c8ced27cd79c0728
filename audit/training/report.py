"""The per-cohort table ``vetcache train`` and the verifier gate print."""

from __future__ import annotations

from collections.abc import Mapping

from audit.training.metrics import Metrics


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def table(metrics: Mapping[str, Metrics], notes: Mapping[str, str] | None = None) -> str:
    """One row per cohort: pairs, positives, served, FP share, recall, trap pass, AUC (and a
    note, e.g. why a gated cohort failed)."""
    notes = notes or {}
    width = max([len("cohort"), *map(len, metrics)])
    head = (
        f"{'cohort':<{width}}  {'pairs':>6} {'pos':>5} {'served':>6} "
        f"{'fp_share':>8} {'recall':>6} {'traps':>6} {'auc':>6}"
    )
    lines = [head]
    for name, m in metrics.items():
        line = (
            f"{name:<{width}}  {m.pairs:>6} {m.positives:>5} {m.served:>6} "
            f"{_number(m.fp_share):>8} {_number(m.recall):>6} {_number(m.trap_pass):>6} "
            f"{_number(m.auc):>6}"
        )
        lines.append(f"{line}  {notes[name]}" if name in notes else line)
    return "\n".join(lines)
