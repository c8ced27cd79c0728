"""Moving a namespace from the embedding version it serves to another, without ever comparing
vectors of two versions: start (a target; its entries are built by ``cache.migration``),
shadow (``cache.version_shadow``), cutover, rollback, abort, purge.

Every step is one compare-and-set of the namespace's ``VersionState`` in the store, so two
operators (or a CLI and an admin route) never both win, and every replica follows within
``cache.threshold_refresh_s``. The rules a cutover must pass are ``refusals``: the migration
is done, the target passed the margin gate (``vetcache rollout gate``), and on live traffic
its would-be hits are as often right (by the judge) and as frequent as the serving version's,
overall and in every cohort with enough evidence. Entries of the version served before a
cutover are kept for ``retention_s`` (each still ends at its TTL): a rollback is the same
switch back.
"""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict

from cache.embedder_set import EmbedderSet
from cache.errors import RolloutRefused
from cache.rollout_settings import RolloutSettings
from cache.stores.base import Store
from cache.versions import MigrationProgress, VersionState

ALL = "all"
"""The cohort of every lookup."""
SHADOW_FIELDS = ("lookups", "serving_hits", "target_hits", "agree")
_NO_TARGET = {"target": None, "gate_passed": None, "gate_summary": ""}
"""A state's fields once its migration is over (aborted)."""


class Judged(BaseModel):
    """Would-be hits (or hits) a judge labelled, and how many of them false."""

    model_config = ConfigDict(frozen=True)

    judged: int = 0
    false: int = 0

    @property
    def share(self) -> float | None:
        """FP share of the judged ones (None: none judged)."""
        return self.false / self.judged if self.judged else None


class Shadow(BaseModel):
    """The shadow comparison of one cohort: lookups repeated under the target."""

    model_config = ConfigDict(frozen=True)

    lookups: int = 0
    serving_hits: int = 0
    """The serving version hit (the answer the client got came from the cache)."""
    target_hits: int = 0
    """The target would have hit."""
    agree: int = 0
    """Both missed, or both hit the same entry (the target's copy of the one served)."""

    def rate(self, count: int) -> float | None:
        return count / self.lookups if self.lookups else None


class Evidence(BaseModel):
    """What a cutover is judged on, per cohort (``ALL``, ``length=short``...)."""

    model_config = ConfigDict(frozen=True)

    shadow: dict[str, Shadow] = {}
    target: dict[str, Judged] = {}
    """The judge's labels on the target's would-be hits."""
    serving: dict[str, Judged] = {}
    """The judge's labels on the serving version's hits since the migration started."""


def shadow_from_counts(counts: dict[str, dict[str, int]]) -> dict[str, Shadow]:
    """The store's shadow counters (``Store.shadow_counts``) as ``Shadow`` per cohort
    (every lookup counts in ``all=all``: ``ALL``)."""
    return {
        ALL if cohort == f"{ALL}={ALL}" else cohort: Shadow(
            **{f: int(values.get(f, 0)) for f in SHADOW_FIELDS}
        )
        for cohort, values in counts.items()
    }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _shadow_refusals(evidence: Evidence, settings: RolloutSettings) -> list[str]:
    reasons = []
    overall = evidence.shadow.get(ALL, Shadow())
    if overall.lookups < settings.min_shadow_lookups:
        reasons.append(
            f"{overall.lookups} shadow lookups, {settings.min_shadow_lookups} needed "
            "(cache.rollout.min_shadow_lookups)"
        )
    for cohort, shadow in sorted(evidence.shadow.items()):
        if shadow.lookups < settings.min_shadow_lookups:
            continue
        served, would = shadow.rate(shadow.serving_hits), shadow.rate(shadow.target_hits)
        if served is not None and would is not None and would < served - settings.max_hit_drop:
            reasons.append(
                f"{cohort}: the target would hit {_pct(would)} of lookups, the serving "
                f"version hit {_pct(served)} (cache.rollout.max_hit_drop {settings.max_hit_drop:g})"
            )
    return reasons


def _judged_refusals(evidence: Evidence, settings: RolloutSettings) -> list[str]:
    reasons = []
    overall = evidence.target.get(ALL, Judged())
    if overall.judged < settings.min_judged:
        reasons.append(
            f"{overall.judged} judged would-be hits of the target, {settings.min_judged} needed "
            "(cache.rollout.min_judged)"
        )
    for cohort, judged in sorted(evidence.target.items()):
        share = judged.share
        if judged.judged < settings.min_judged or share is None:
            continue
        if share > settings.max_fp:
            reasons.append(
                f"{cohort}: FP share of the target's would-be hits {_pct(share)} > "
                f"{settings.max_fp:g} ({judged.false}/{judged.judged})"
            )
            continue
        serving = evidence.serving.get(cohort, Judged()).share
        if serving is not None and share > serving + settings.max_fp_increase:
            reasons.append(
                f"{cohort}: FP share of the target's would-be hits {_pct(share)} > the "
                f"serving version's {_pct(serving)} + {settings.max_fp_increase:g}"
            )
    return reasons


def refusals(
    state: VersionState | None,
    progress: MigrationProgress | None,
    evidence: Evidence,
    settings: RolloutSettings,
) -> list[str]:
    """Why a cutover of the namespace in ``state`` must not happen now (empty: it may)."""
    if state is None or state.target is None:
        return ["no migration in progress (vetcache rollout start)"]
    reasons = []
    if progress is None or not progress.done:
        copied = progress.copied if progress is not None else 0
        reasons.append(f"the migration is not done ({copied} entries copied; rollout migrate)")
    if not state.gate_passed:
        reasons.append("the target has not passed the margin gate (vetcache rollout gate)")
    return reasons + _shadow_refusals(evidence, settings) + _judged_refusals(evidence, settings)


class Rollout:
    """The rollout steps of the namespaces of one store, for the versions loaded here."""

    def __init__(self, store: Store, embedders: EmbedderSet, settings: RolloutSettings) -> None:
        self.store = store
        self.embedders = embedders
        self.settings = settings

    async def state(self, namespace: str) -> VersionState | None:
        return (await self.store.versions()).get(namespace)

    def serving_of(self, state: VersionState | None) -> str:
        """The fingerprint a namespace in ``state`` serves (no state: the primary's)."""
        return state.serving if state is not None else self.embedders.primary.fingerprint

    async def _set(
        self, namespace: str, new: VersionState | None, old: VersionState | None
    ) -> None:
        if not await self.store.set_version(namespace, new, old):
            raise RolloutRefused(["the namespace's version changed meanwhile: look again"])

    async def start(self, namespace: str, version: str) -> VersionState:
        """Begin migrating ``namespace`` to the loaded version named ``version``."""
        embedder = self.embedders.named(version)
        if embedder is None:
            known = ", ".join(name for name, _ in self.embedders)
            raise RolloutRefused([f"no embedding version {version!r} is loaded (known: {known})"])
        state = await self.state(namespace)
        serving = self.serving_of(state)
        if state is not None and state.target is not None:
            name = self.embedders.name_of(state.target) or state.target
            raise RolloutRefused([f"already migrating to {name} (rollout abort first)"])
        if embedder.fingerprint == serving:
            raise RolloutRefused([f"the namespace already serves {version}"])
        new = VersionState(
            serving=serving,
            target=embedder.fingerprint,
            previous=state.previous if state is not None else None,
            previous_until=state.previous_until if state is not None else None,
            changed_at=time.time(),
        )
        await self._set(namespace, new, state)
        return new

    async def record_gate(self, namespace: str, passed: bool, summary: str) -> VersionState:
        """Record the margin gate's verdict on the namespace's target."""
        state = await self.state(namespace)
        if state is None or state.target is None:
            raise RolloutRefused(["no migration in progress (vetcache rollout start)"])
        new = state.model_copy(update={"gate_passed": passed, "gate_summary": summary})
        await self._set(namespace, new, state)
        return new

    async def cutover(self, namespace: str, evidence: Evidence) -> VersionState:
        """Serve the target (``RolloutRefused`` with every reason when ``refusals`` says no)."""
        state = await self.state(namespace)
        progress = None
        if state is not None and state.target is not None:
            progress = await self.store.migration(namespace, state.target)
        reasons = refusals(state, progress, evidence, self.settings)
        if reasons:
            raise RolloutRefused(reasons)
        assert state is not None
        assert state.target is not None
        return await self._switch(namespace, state, state.target)

    async def rollback(self, namespace: str) -> VersionState:
        """Serve the version served before the last cutover, while its entries are kept."""
        state = await self.state(namespace)
        if state is None or state.previous is None:
            raise RolloutRefused(["no earlier version to roll back to"])
        if state.target is not None:
            raise RolloutRefused(["a migration is in progress (rollout abort first)"])
        if state.previous_until is not None and state.previous_until < time.time():
            raise RolloutRefused(["the earlier version's retention has ended"])
        return await self._switch(namespace, state, state.previous)

    async def _switch(self, namespace: str, state: VersionState, to: str) -> VersionState:
        new = VersionState(
            serving=to,
            previous=state.serving,
            previous_until=time.time() + self.settings.retention_s,
            changed_at=time.time(),
        )
        await self._set(namespace, new, state)
        await self.store.swap_counts(namespace, state.serving, to)
        return new

    async def abort(self, namespace: str) -> int:
        """Stop migrating: forget the target and delete its entries (how many)."""
        state = await self.state(namespace)
        if state is None or state.target is None:
            raise RolloutRefused(["no migration in progress"])
        await self._set(namespace, state.model_copy(update=_NO_TARGET), state)
        return await self.store.purge_version(namespace, state.target)

    async def purge(self, namespace: str) -> int:
        """Delete the earlier version's entries once its retention has ended (how many)."""
        state = await self.state(namespace)
        if state is None or state.previous is None:
            return 0
        if state.previous_until is not None and state.previous_until > time.time():
            raise RolloutRefused(["the earlier version's retention has not ended"])
        new = state.model_copy(update={"previous": None, "previous_until": None})
        await self._set(namespace, new, state)
        return await self.store.purge_version(namespace, state.previous)
