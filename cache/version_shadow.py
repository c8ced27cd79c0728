"""Shadow lookups under a namespace's target version, on live traffic.

While a namespace migrates, a share (``cache.rollout.shadow_rate``) of its lookups is
repeated under the target after the answer has been sent: the same request's key under the
target (``CacheKey.for_version``: its own scope, so only the target's vectors are searched),
through the same lookup and serving policy (the verifier included). Counted per cohort in
the store, so every replica's comparisons add up (``cache.rollout.Shadow``): lookups, the
serving version's hits, the target's would-be hits, and agreement (both missed, or the
target would have served its copy of the very entry served). The target's would-be hit is
returned for the auditor to judge (``audit.Auditor.rollout_hit``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable

from cache.cohorts import prompt_cohorts
from cache.errors import CacheError
from cache.rollout import ALL
from cache.schema import CacheKey, Lookup, Outcome
from cache.stores.base import Store
from cache.version_routing import VersionRouting

log = logging.getLogger("vetcache.cache")
LookupFn = Callable[..., Awaitable[Lookup]]
"""``SemanticCache.lookup`` (called with ``observed=False``)."""


def agree(served: Lookup, would: Lookup) -> bool:
    """Both missed, or the target's would-be hit is its copy of the entry served."""
    hit, other = served.hit or served.shadow_hit, would.hit or would.shadow_hit
    if hit is None or other is None:
        return hit is None and other is None
    return other.entry.origin == hit.entry.id or other.entry.id == hit.entry.id


class VersionShadow:
    """Repeats sampled lookups of migrating namespaces under their target."""

    def __init__(
        self,
        routing: VersionRouting,
        store: Store,
        lookup: LookupFn,
        rate: float,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.routing = routing
        self.store = store
        self._lookup = lookup
        self.rate = rate
        self._draw = draw

    async def compare(self, key: CacheKey, served: Lookup) -> tuple[CacheKey, Lookup] | None:
        """Repeat ``served`` (the lookup that answered ``key``) under the target of ``key``'s
        namespace, if it migrates and the draw samples it; count the comparison. The
        target's key and lookup, or None (not sampled, no target, a failed lookup)."""
        if served.outcome == Outcome.FAIL_OPEN:
            return None
        target = self.routing.target(key.namespace)
        if target is None or target.fingerprint == key.embedder or self._draw() >= self.rate:
            return None
        shadow_key = key.for_version(target.fingerprint)
        would = await self._lookup(shadow_key, served.threshold, observed=False)
        if would.outcome == Outcome.FAIL_OPEN:
            return None
        fields = {
            "lookups": 1,
            "serving_hits": int((served.hit or served.shadow_hit) is not None),
            "target_hits": int((would.hit or would.shadow_hit) is not None),
            "agree": int(agree(served, would)),
        }
        cohorts = {ALL: ALL, **prompt_cohorts(key.text)}
        try:
            await self.store.shadow_count(key.namespace, target.fingerprint, cohorts, fields)
        except CacheError as exc:
            log.warning("rollout shadow not counted: %s", type(exc).__name__)
        return shadow_key, would
