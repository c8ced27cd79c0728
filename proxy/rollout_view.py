"""A namespace's rollout as ``vetcache rollout status`` and ``GET /admin/rollout/{ns}`` show
it: the versions (by config name and fingerprint), the migration's progress, the shadow
comparison and judged FP shares per cohort, and why a cutover would be refused now."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from audit.rollout_evidence import gather
from audit.schema import Verdict
from cache.rollout import ALL, Evidence, Judged, Rollout, Shadow, refusals


def _version(rollout: Rollout, fingerprint: str | None) -> dict[str, str] | None:
    if fingerprint is None:
        return None
    name = rollout.embedders.name_of(fingerprint)
    return {"name": name or "(not loaded here)", "fingerprint": fingerprint}


def _cohort(shadow: Shadow, target: Judged, serving: Judged) -> dict[str, Any]:
    return {
        "lookups": shadow.lookups,
        "serving_hit_rate": shadow.rate(shadow.serving_hits),
        "target_hit_rate": shadow.rate(shadow.target_hits),
        "agreement": shadow.rate(shadow.agree),
        "target_judged": target.judged,
        "target_fp_share": target.share,
        "serving_judged": serving.judged,
        "serving_fp_share": serving.share,
    }


def cohorts(evidence: Evidence) -> dict[str, dict[str, Any]]:
    """The comparison per cohort, ``all`` first."""
    names = {*evidence.shadow, *evidence.target, *evidence.serving}
    ordered = sorted(names, key=lambda name: (name != ALL, name))
    return {
        name: _cohort(
            evidence.shadow.get(name, Shadow()),
            evidence.target.get(name, Judged()),
            evidence.serving.get(name, Judged()),
        )
        for name in ordered
    }


async def status(rollout: Rollout, namespace: str, verdicts: Iterable[Verdict]) -> dict[str, Any]:
    """Everything about ``namespace``'s versions, JSON-ready; ``verdicts``: the namespace's
    verdicts since its migration started (or more)."""
    state = await rollout.state(namespace)
    progress = None
    if state is not None and state.target is not None:
        progress = await rollout.store.migration(namespace, state.target)
    evidence = await gather(rollout.store, namespace, state, verdicts)
    found: dict[str, Any] = {
        "namespace": namespace,
        "serving": _version(rollout, rollout.serving_of(state)),
        "target": _version(rollout, state.target if state else None),
        "previous": _version(rollout, state.previous if state else None),
        "previous_until": state.previous_until if state else None,
        "gate_passed": state.gate_passed if state else None,
        "gate": state.gate_summary if state else "",
        "migration": progress.model_dump(mode="json") if progress is not None else None,
        "cohorts": cohorts(evidence),
    }
    if state is not None and state.target is not None:
        found["cutover_refusals"] = refusals(state, progress, evidence, rollout.settings)
    return found


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def render_text(found: dict[str, Any]) -> str:
    """``status`` as lines for a terminal."""
    lines = [f"namespace {found['namespace']}"]
    for role in ("serving", "target", "previous"):
        version = found[role]
        if version is not None:
            lines.append(f"  {role:<9} {version['name']}  {version['fingerprint']}")
    if found["previous_until"]:
        left = max(0.0, found["previous_until"] - time.time()) / 3600
        lines.append(f"  previous kept {left:.1f} h more (rollback until then)")
    migration = found["migration"]
    if migration is not None:
        state = "done" if migration["done"] else "in progress"
        lines.append(
            f"  migration {state}: {migration['copied']} copied, {migration['skipped']} "
            f"skipped, {migration['failed']} failed"
        )
    if found["target"] is not None:
        gate = {True: "passed", False: "failed", None: "not run"}[found["gate_passed"]]
        lines.append(f"  margin gate {gate} {found['gate']}".rstrip())
    if found["cohorts"]:
        lines.append(
            f"  {'cohort':<22}{'lookups':>8}{'hit':>8}{'would':>8}{'agree':>8}"
            f"{'FP tgt':>14}{'FP serving':>16}"
        )
    for name, row in found["cohorts"].items():
        fp_target = f"{_share(row['target_fp_share'])} ({row['target_judged']})"
        fp_serving = f"{_share(row['serving_fp_share'])} ({row['serving_judged']})"
        lines.append(
            f"  {name:<22}{row['lookups']:>8}{_share(row['serving_hit_rate']):>8}"
            f"{_share(row['target_hit_rate']):>8}{_share(row['agreement']):>8}"
            f"{fp_target:>14}{fp_serving:>16}"
        )
    for reason in found.get("cutover_refusals", []):
        lines.append(f"  cutover refused: {reason}")
    if found["target"] is not None and not found.get("cutover_refusals"):
        lines.append("  cutover allowed")
    return "\n".join(lines) + "\n"
