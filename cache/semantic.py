"""``SemanticCache``: exact layer, then similarity search within the scope; fail-open.

Similarity is cosine similarity of unit vectors, from -1 to 1 (1 = same direction). A lookup
finds the nearest candidate, and the ``search_k`` nearest when the serving policy
(``cache.policy``) refuses it; the policy serves the most similar one it may, if any. Every
cache or embedder failure, and every lookup slower than ``lookup_budget_ms``, is a
``fail_open`` outcome: the caller answers from the upstream. The budget holds whatever Redis
or the embedder do (``cache.deadline``: the lookup stops waiting at its deadline, it does not
rely on cancelling them), and a lookup that cannot make it is shed before it starts
(``Overloaded``). Incidents are logged by ``cache.incidents``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from cache import admission
from cache.candidates import labelled, searched
from cache.checks import default_checks
from cache.deadline import Deadlines
from cache.embedder import Embedder, Vector
from cache.embedder_set import EmbedderSet
from cache.errors import CacheError, EmbedderError, Overloaded, StoreError, StoreUnusable
from cache.incidents import Incidents
from cache.keys import derive_key
from cache.observe import NULL_OBSERVER, Observer
from cache.periodic import Periodic
from cache.policy import Check, Choice, ServingPolicy
from cache.schema import CacheEntry, CacheKey, Candidate, Lookup, Outcome
from cache.settings import CacheSettings, Confirm
from cache.stores.base import Store
from cache.version_routing import VersionRouting
from cache.version_shadow import VersionShadow
from cache.versions import copy_of

log = logging.getLogger("vetcache.cache")
CLOSE_WAIT_S = 1.0
"""How long ``close`` waits for abandoned lookups to end."""


class _Found(NamedTuple):
    """What a lookup found before the policy saw it."""

    candidates: tuple[Candidate, ...]
    """Most similar first: the exact repeat alone, or the search's nearest."""
    vector: Vector | None = None
    pending: CacheEntry | None = None


class SemanticCache:
    """The cache the gateway asks before calling the upstream."""

    def __init__(
        self,
        settings: CacheSettings,
        store: Store,
        embedder: Embedder,
        observer: Observer = NULL_OBSERVER,
        checks: Sequence[Check] | None = None,
        versions: EmbedderSet | None = None,
    ) -> None:
        """``checks`` plug into the serving policy (default: ``default_checks``);
        ``versions``: every embedding version loaded (default: ``embedder`` alone)."""
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.versions = VersionRouting(
            versions or EmbedderSet(embedder, settings.embedding_version)
        )
        self.observer = observer
        if checks is None:
            checks = default_checks(settings)
        self.policy = ServingPolicy(settings, embedder, checks)
        self.errors = 0
        self.incidents = Incidents(settings.lookup_budget_ms)
        self.deadlines = Deadlines()
        self._store_open = False
        self._live: dict[str, float] = {}
        self.shadow = VersionShadow(self.versions, store, self.lookup, settings.rollout.shadow_rate)
        self._refresher = Periodic(
            "vetcache-thresholds", self.refresh_thresholds, settings.threshold_refresh_s
        )

    async def open(self) -> None:
        """Load the embedder and the checks' models and prepare the store. A store that cannot
        be reached now is retried on later lookups; one that can never work
        (``StoreUnusable``) raises, as does a verifier that is not one (``VerifierError``)."""
        await self.versions.embedders.open()
        await self.policy.open(self.observer)
        await self._open_store()
        self._refresher.start()

    async def _open_store(self) -> None:
        try:
            await self.store.open(self.embedder.dimension)
        except StoreUnusable:
            raise
        except StoreError as exc:
            self._incident(exc)
            return
        self._store_open = True

    async def close(self) -> None:
        await self._refresher.stop()
        await self.policy.close()
        await self.versions.embedders.close()
        await self.store.close()
        await self.deadlines.drain(CLOSE_WAIT_S)

    async def refresh_thresholds(self) -> None:
        """Re-read the live thresholds and embedding versions (kept as they were if the
        store is down)."""
        try:
            self._live = await self.store.thresholds()
            self.versions.states = await self.store.versions()
        except StoreError as exc:
            self._incident(exc)

    async def set_threshold(self, namespace: str, value: float | None) -> None:
        """Set (or with None, clear) the live threshold of ``namespace`` for every replica."""
        await self.store.set_threshold(namespace, value)
        await self.refresh_thresholds()

    def thresholds(self) -> dict[str, float]:
        """The namespace thresholds in force: config, overridden by live ones."""
        return {**self.settings.namespace_thresholds, **self._live}

    async def sizes(self, limit: int = 1000) -> dict[str, int]:
        """Live entries per namespace, for at most ``limit`` namespaces (``StoreError`` when
        the store is down)."""
        return await self.store.sizes(limit)

    def key(self, body: Mapping[str, Any], tenant: str, namespace: str) -> CacheKey:
        """The request's key, under the version ``namespace`` serves
        (``cache.keys.NotCacheable`` when it has none)."""
        return derive_key(
            body,
            tenant=tenant,
            namespace=namespace,
            embedder=self.versions.serving(namespace).fingerprint,
            policy=self.settings.context_policy,
            last_turns=self.settings.last_turns,
        )

    def threshold(
        self, namespace: str, requested: float | None = None, may_loosen: bool = False
    ) -> float:
        """The threshold in force (``CacheSettings.threshold_for``, with the live ones)."""
        return self.settings.threshold_for(namespace, self._live, requested, may_loosen)

    async def lookup(
        self,
        key: CacheKey,
        threshold: float,
        *,
        max_age_s: int | None = None,
        observed: bool = True,
        on_exact_miss: Callable[[], None] | None = None,
    ) -> Lookup:
        """The candidates (exact layer first, then the nearest within the scope; the
        ``search_k`` nearest when the policy refused the nearest) and the serving policy's
        choice among them; ``fail_open`` within the budget. ``observed`` False (a shadow
        lookup under a rollout's target, after the answer): no stage timings, no incidents.
        ``on_exact_miss`` is called once the exact layer has no servable entry, before the
        embedding (speculation: ``proxy.speculation``). ``max_age_s``: only entries admitted
        at most this many seconds ago are served (``Cache-Control: max-age``; the others are
        refused ``stale``, in the exact layer and the search alike)."""
        fresh_since = None if max_age_s is None else time.time() - max_age_s
        # The deadline is on the loop's clock (uvloop's ticks in whole ms); the stage's time
        # on perf_counter, or every lookup would be timed in whole milliseconds.
        deadline = asyncio.get_running_loop().time() + self.settings.lookup_budget_ms / 1000.0
        started = time.perf_counter()
        observer = self.observer if observed else NULL_OBSERVER
        try:
            find = self._find(key, deadline, observer, on_exact_miss, fresh_since)
            found = await self.deadlines.run(find, deadline)
        except (CacheError, TimeoutError) as exc:
            if observed:
                self._incident(exc)
            return Lookup(outcome=Outcome.FAIL_OPEN, threshold=threshold, embedder=key.embedder)
        finally:
            observer.stage("lookup", time.perf_counter() - started)
        if observed:
            self.incidents.succeeded()
        choice = await self.policy.choose(key, found.candidates, threshold, None, fresh_since)
        if found.vector is not None and self._widens(found, choice):
            further = self._look_further(
                key, found.vector, (threshold, fresh_since), deadline, choice, observer
            )
            choice = await further
        decision = choice.decision
        return Lookup(
            outcome=decision.outcome,
            threshold=threshold,
            candidate=choice.candidate,
            shadow=decision.shadow,
            refused=decision.refused,
            verifier=decision.verifier,
            verifier_score=decision.verifier_score,
            passed_over=choice.passed_over,
            embedder=key.embedder,
            vector=found.vector,
            pending=found.pending,
        )

    def _widens(self, found: _Found, choice: Choice) -> bool:
        """Whether to search the ``search_k`` nearest: the policy refused the one nearest
        entry the first search read. The first reads one entry, the hot path's cost; a
        refused entry costs one more search, never a hidden second-best."""
        return (
            self.settings.search_k > 1 and len(found.candidates) == 1 and bool(choice.passed_over)
        )

    async def _look_further(
        self,
        key: CacheKey,
        vector: Vector,
        bars: tuple[float, float | None],
        deadline: float,
        choice: Choice,
        observer: Observer,
    ) -> Choice:
        """The policy's choice among the ``search_k`` nearest, in what is left of the budget;
        if the search fails or runs out of time, the refusal of the nearest stands.
        ``bars``: the threshold and the time entries must be admitted since (or None)."""
        search = searched(self.store, key, vector, self.settings.search_k, observer)
        try:
            candidates = await self.deadlines.run(search, deadline)
        except (CacheError, TimeoutError) as exc:
            if observer is self.observer:
                self._incident(exc)
            return choice
        threshold, fresh_since = bars
        return await self.policy.choose(key, candidates, threshold, choice, fresh_since)

    async def _find(
        self,
        key: CacheKey,
        deadline: float,
        observer: Observer,
        on_exact_miss: Callable[[], None] | None = None,
        fresh_since: float | None = None,
    ) -> _Found:
        """Runs as a task of its own that ``lookup`` may abandon (not cancel); between its
        steps it checks the deadline itself, so an abandoned find stops at its next step.
        An exact repeat admitted before ``fresh_since`` is passed over for the search (which
        finds it again, for the policy to refuse, and may find a younger paraphrase)."""
        if not self._store_open:
            await self._open_store()
            if not self._store_open:
                raise StoreError("the store is not reachable")
        with observer.timed("exact_lookup"):
            exact = await self.store.get_exact(key.scope, key.exact)
        if exact is not None and not exact.pending:
            if fresh_since is None or exact.created_at >= fresh_since:
                found = [Candidate(entry=exact, similarity=1.0, exact=True)]
                return _Found(await labelled(self.store, found, None))
            exact = None
        _in_time(deadline)
        if on_exact_miss is not None:
            on_exact_miss()
        with observer.timed("embed"):
            vector = await self.versions.embedder(key.embedder).embed(key.text, deadline)
        _in_time(deadline)
        return _Found(await searched(self.store, key, vector, 1, observer), vector, exact)

    def admissible(
        self,
        body: Mapping[str, Any],
        completion: Mapping[str, Any],
        answered_by: str | None = None,
    ) -> bool:
        """Whether an upstream answer may be cached (``cache.admission``)."""
        return admission.admissible(self.settings, body, completion, answered_by)

    async def admit(
        self,
        key: CacheKey,
        vector: Vector | None,
        completion: Mapping[str, Any],
        asker: str = "",
        answered_by: str | None = None,
        ttl_s: int | None = None,
    ) -> CacheEntry | None:
        """Store ``completion`` under ``key`` (pending, under a ``confirm`` or ``audited``
        policy, with ``asker`` as its first asker), recording the alias ``answered_by``, to
        live ``ttl_s`` (the request's, cut to ``max_ttl_s``; None: ``ttl_s``); the entry
        stored, or None when storing failed (counted and logged, not raised)."""
        pending = self.settings.admission_for(key.namespace) != "open"
        ttl = self.settings.ttl_for(ttl_s)
        entry = admission.new_entry(key, completion, answered_by, ttl, pending)
        with self.observer.timed("admit"):
            return await self._admit(key, vector, entry, asker)

    async def _admit(
        self,
        key: CacheKey,
        vector: Vector | None,
        entry: CacheEntry,
        asker: str,
    ) -> CacheEntry | None:
        policy = self.settings.admission_for(key.namespace)
        try:
            if vector is None:
                vector = await self.versions.embedder(key.embedder).embed(key.text)
            if not self._store_open:
                await self._open_store()
                if not self._store_open:
                    return None
            await self.store.put(
                entry, vector, entry.ttl_s, self.settings.max_entries_per_namespace
            )
            if isinstance(policy, Confirm):
                await self.store.confirm(key.scope, entry.id, asker, policy.confirm)
            elif not entry.pending:
                await self._copy_to_target(key, entry)
        except CacheError as exc:
            self._incident(exc)
            return None
        return entry

    async def _copy_to_target(self, key: CacheKey, entry: CacheEntry) -> None:
        """While ``key``'s namespace migrates, write the new entry under the target too
        (``cache.versions.copy_of``): the migration's walk may have passed it. A failure is
        counted; the entry itself stands."""
        target = self.versions.target(key.namespace)
        if target is None or target.fingerprint == key.embedder:
            return
        try:
            vector = await target.embed(key.text)
            copy = copy_of(entry, target.fingerprint)
            expires_at = entry.created_at + (entry.ttl_s or self.settings.ttl_s)
            await self.store.put_copy(copy, vector, expires_at)
        except CacheError as exc:
            self._incident(exc)

    async def served(self, entry: CacheEntry) -> None:
        """After a hit on ``entry``: under ``sliding_ttl``, it lives its TTL again from now
        (a failure is counted and logged, not raised)."""
        if not self.settings.sliding_ttl:
            return
        try:
            await self.store.touch(entry, entry.ttl_s or self.settings.ttl_s)
        except StoreError as exc:
            self._incident(exc)

    async def confirm(self, key: CacheKey, entry: CacheEntry, asker: str) -> None:
        """Count ``asker`` for the pending ``entry`` under a ``confirm`` policy."""
        policy = self.settings.admission_for(key.namespace)
        if not isinstance(policy, Confirm):
            return
        try:
            if await self.store.confirm(key.scope, entry.id, asker, policy.confirm):
                log.info("entry %s released: %d askers", entry.id, policy.confirm)
        except StoreError as exc:
            self._incident(exc)

    def _incident(self, exc: Exception) -> None:
        self.errors += 1
        kinds = ((TimeoutError, "timeout"), (Overloaded, "shed"), (EmbedderError, "embedder"))
        kind = next((name for cls, name in kinds if isinstance(exc, cls)), "store")
        self.observer.cache_error(kind)
        self.incidents.failed(kind, exc)


def _in_time(deadline: float) -> None:
    """``TimeoutError`` once ``deadline`` (the loop's clock) has passed."""
    if asyncio.get_running_loop().time() >= deadline:
        raise TimeoutError
