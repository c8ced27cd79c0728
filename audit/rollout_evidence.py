"""What a namespace's cutover to another embedding version is judged on (``cache.rollout``):
the shadow counters every replica added up in the store, and the judge's labels on the
target's would-be hits against those on the serving version's hits since the migration
started, per cohort (``all``, ``length=...``, ``language=...``: ``cache.cohorts``).

Semantic decisions only: an exact repeat is no similarity decision of either version.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from audit.schema import Verdict
from audit.stats import effective
from cache.cohorts import prompt_cohorts
from cache.rollout import ALL, Evidence, Judged, shadow_from_counts
from cache.stores.base import Store
from cache.versions import VersionState

VERDICTS_READ = 10_000
"""Verdicts of a namespace read for its evidence, newest first, at most."""


def judged(verdicts: Iterable[Verdict]) -> dict[str, Judged]:
    """Labelled semantic (would-be) hits per cohort: how many, how many false."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for verdict in effective(verdicts):
        job = verdict.job
        if verdict.verdict not in ("correct", "false_positive") or job.exact or job.near_miss:
            continue
        if job.admission:
            continue
        cohorts = {ALL: ALL, **prompt_cohorts(job.new_prompt)}
        for dimension, value in cohorts.items():
            name = ALL if dimension == ALL else f"{dimension}={value}"
            counts[name][0] += 1
            counts[name][1] += verdict.verdict == "false_positive"
    return {name: Judged(judged=n, false=f) for name, (n, f) in sorted(counts.items())}


def split_verdicts(
    verdicts: Iterable[Verdict], state: VersionState
) -> tuple[list[Verdict], list[Verdict]]:
    """The verdicts on the target's would-be hits, and on the serving version's hits since
    the state last changed."""
    target, serving = [], []
    for verdict in verdicts:
        job = verdict.job
        if job.rollout and job.embedder == state.target:
            target.append(verdict)
        elif (
            not job.rollout
            and job.embedder == state.serving
            and verdict.created_at >= state.changed_at
        ):
            serving.append(verdict)
    return target, serving


async def gather(
    store: Store, namespace: str, state: VersionState | None, verdicts: Iterable[Verdict]
) -> Evidence:
    """The evidence on ``namespace``'s migration (empty when it is not migrating);
    ``verdicts``: the namespace's verdicts since the migration started (or more)."""
    if state is None or state.target is None:
        return Evidence()
    shadow = shadow_from_counts(await store.shadow_counts(namespace, state.target))
    target, serving = split_verdicts(verdicts, state)
    return Evidence(shadow=shadow, target=judged(target), serving=judged(serving))
