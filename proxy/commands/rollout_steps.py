"""The steps of ``vetcache rollout`` that do more than one store change: the migration
(``cache.migration.Migrator``, until done), the margin gate on the target (``audit.evaluate``,
recorded in the namespace's state), the evidence a cutover is judged on, the status."""

from __future__ import annotations

import sys
from pathlib import Path

from audit.backends import build_queue_and_ledger
from audit.errors import InputError, LedgerError
from audit.evaluate import Report, check_gate, score
from audit.pairs import embed_similarities, load_pairs
from audit.rollout_evidence import gather
from audit.schema import Verdict
from cache.errors import RolloutRefused
from cache.migration import Migrator
from cache.rollout import Evidence, Rollout
from cache.settings import CacheSettings
from proxy.rollout_view import render_text, status
from proxy.settings import Settings

VERDICTS_READ = 10_000
MARGIN_TOLERANCE = 0.005
"""How far under the serving version's overall margin the target's may be and still pass:
the same model's int8 and fp32 forms differ by about this (0.078 vs 0.078 on the project's
210 fixture pairs; pair-detection ROC-AUC within 0.003)."""


async def _verdicts_since(settings: Settings, namespace: str, since: float) -> list[Verdict]:
    queue, ledger = build_queue_and_ledger(
        settings.audit, settings.redis_url, redis_cluster=settings.redis_cluster
    )
    try:
        return await ledger.query(namespace=namespace, since=since, limit=VERDICTS_READ)
    except LedgerError as exc:
        print(f"vetcache: rollout: the audit ledger is unreachable: {exc}", file=sys.stderr)
        return []
    finally:
        await queue.close()
        await ledger.close()


async def evidence(rollout: Rollout, namespace: str, settings: Settings) -> Evidence:
    """The shadow counts and judged would-be hits a cutover is judged on."""
    state = await rollout.state(namespace)
    since = state.changed_at if state is not None else 0.0
    verdicts = await _verdicts_since(settings, namespace, since)
    return await gather(rollout.store, namespace, state, verdicts)


async def show(rollout: Rollout, namespace: str, settings: Settings, form: str) -> None:
    """Print the namespace's status."""
    import orjson

    state = await rollout.state(namespace)
    since = state.changed_at if state is not None else 0.0
    found = await status(rollout, namespace, await _verdicts_since(settings, namespace, since))
    if form == "json":
        sys.stdout.write(orjson.dumps(found, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(render_text(found))


async def migrate(rollout: Rollout, namespace: str, rate: float, batch: int) -> int:
    """Copy the namespace's live entries to its target until done (resumes a killed run)."""
    state = await rollout.state(namespace)
    if state is None or state.target is None:
        raise RolloutRefused(["no migration in progress (vetcache rollout start)"])
    source = rollout.embedders.by_fingerprint(state.serving)
    target = rollout.embedders.by_fingerprint(state.target)
    if source is None or target is None:
        raise RolloutRefused(["the serving and target versions must both be loaded here"])
    migrator = Migrator(rollout.store, source, target, rate_per_s=rate, batch=batch)
    progress = await migrator.run(namespace)
    print(
        f"migration of {namespace} done: {progress.copied} copied, {progress.skipped} skipped "
        f"(admitted before versions), {progress.failed} failed"
    )
    return 0


def _settings_of(rollout: Rollout, base: CacheSettings, fingerprint: str) -> CacheSettings:
    name = rollout.embedders.name_of(fingerprint)
    version = base.embedding_versions.get(name or "")
    if version is None:  # the primary
        return base
    return base.model_copy(
        update={"embedding_model": version.model, "embedding_backend": version.backend}
    )


def _margin(report: Report) -> float | None:
    return report.overall.margin


async def gate(
    rollout: Rollout, namespace: str, pairs_file: Path, min_margin: float, base: CacheSettings
) -> int:
    """The margin gate on the target (every gated cohort >= ``min_margin``, and the overall
    margin not below the serving version's on the same pairs), recorded in the state."""
    state = await rollout.state(namespace)
    if state is None or state.target is None:
        raise RolloutRefused(["no migration in progress (vetcache rollout start)"])
    try:
        pairs = load_pairs(pairs_file)
    except InputError as exc:
        for line in exc.errors[:20]:
            print(line, file=sys.stderr)
        return 2
    target_values, _ = await embed_similarities(pairs, _settings_of(rollout, base, state.target))
    serving_values, _ = await embed_similarities(pairs, _settings_of(rollout, base, state.serving))
    target, serving = score(pairs, target_values), score(pairs, serving_values)
    checked = check_gate(target, min_margin=min_margin)
    failing = list(checked.failing)
    if checked.missing is not None:
        failing.append(f"the pairs have no {checked.missing}")
    new, old = _margin(target), _margin(serving)
    if new is not None and old is not None and new < old - MARGIN_TOLERANCE:
        failing.append(f"overall margin {new:.3f} < the serving version's {old:.3f}")
    summary = (
        f"on {len(pairs)} pairs of {pairs_file.name}: margin {_fmt(new)} (serving {_fmt(old)})"
    )
    if failing:
        summary += "; failing: " + ", ".join(failing)
    await rollout.record_gate(namespace, not failing, summary)
    print(f"margin gate {'failed' if failing else 'passed'} {summary}")
    return 1 if failing else 0


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
