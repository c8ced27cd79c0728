"""The steps of ``vetcache rollout`` that do more than one store change: the migration
(``cache.migration.Migrator``, until done), the release gate on the target (the embedder gate
of ``vetcache eval --against``, recorded in the namespace's state), the evidence a cutover is
judged on, the status."""

from __future__ import annotations

import sys
from pathlib import Path

from audit.backends import build_queue_and_ledger
from audit.errors import InputError, LedgerError
from audit.pairs import embed_similarities
from audit.rollout_evidence import VERDICTS_READ, gather
from audit.schema import Verdict
from audit.training.embedder_gate import EmbedderGateLimits, check
from audit.training.files import load_pair_file
from cache.errors import RolloutRefused
from cache.migration import Migrator
from cache.rollout import Evidence, Rollout
from cache.settings import CacheSettings
from proxy.commands.embedder_gate import measure
from proxy.rollout_view import render_text, status
from proxy.settings import Settings


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


async def gate(
    rollout: Rollout, namespace: str, pairs_file: Path, min_margin: float, base: CacheSettings
) -> int:
    """The embedder release gate (``audit.training.embedder_gate``: the margin of every
    gated cohort, and no regression against the serving version) on the target, measured
    at the cache's threshold; its verdict recorded in the namespace's state."""
    state = await rollout.state(namespace)
    if state is None or state.target is None:
        raise RolloutRefused(["no migration in progress (vetcache rollout start)"])
    try:
        pairs = load_pair_file(pairs_file)
    except InputError as exc:
        for line in exc.errors[:20]:
            print(f"vetcache: rollout: {line}", file=sys.stderr)
        return 2
    threshold = base.threshold
    target, _ = await measure(
        _settings_of(rollout, base, state.target), pairs, threshold, embed_similarities
    )
    serving, _ = await measure(
        _settings_of(rollout, base, state.serving), pairs, threshold, embed_similarities
    )
    result = check(target, EmbedderGateLimits(min_margin=min_margin), serving)
    overall, before = target.get("all"), serving.get("all")
    summary = (
        f"on {len(pairs)} pairs of {pairs_file.name} at {threshold:g}: margin "
        f"{_fmt(overall.margin if overall else None)} "
        f"(serving {_fmt(before.margin if before else None)})"
    )
    if result.failures:
        summary += "; failing: " + "; ".join(
            f"{name}: {', '.join(problems)}" for name, problems in result.failures.items()
        )
    await rollout.record_gate(namespace, result.passed, summary)
    print(f"margin gate {'passed' if result.passed else 'failed'} {summary}")
    return result.exit_status


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
