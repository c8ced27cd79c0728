"""A store wrapper that fails or stalls on demand: the fake for fail-open tests."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING

from cache.embedder import Vector
from cache.errors import StoreError
from cache.neighbourhood import Label
from cache.schema import CacheEntry
from cache.stores.base import Store
from cache.versions import MigrationProgress, VersionState

if TYPE_CHECKING:
    from cache.invalidation import Invalidation


class FaultyStore(Store):
    """Delegates to ``inner`` unless ``down`` (raise ``StoreError``) or ``delay_s`` (stall)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.down = False
        self.delay_s = 0.0

    async def _gate(self) -> None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.down:
            raise StoreError("store is down (simulated)")

    async def open(self, dimension: int) -> None:
        await self._gate()
        await self.inner.open(dimension)

    async def get_exact(self, scope: str, exact: str) -> CacheEntry | None:
        await self._gate()
        return await self.inner.get_exact(scope, exact)

    async def search(
        self, scope: str, vector: Vector, k: int = 1
    ) -> list[tuple[CacheEntry, float]]:
        await self._gate()
        return await self.inner.search(scope, vector, k)

    async def put(
        self, entry: CacheEntry, vector: Vector, ttl_s: int | None, cap: int | None
    ) -> None:
        await self._gate()
        await self.inner.put(entry, vector, ttl_s, cap)

    async def touch(self, entry: CacheEntry, ttl_s: int) -> bool:
        await self._gate()
        return await self.inner.touch(entry, ttl_s)

    async def invalidate(self, which: Invalidation) -> int:
        await self._gate()
        return await self.inner.invalidate(which)

    async def count(self, namespace: str, tenant: str | None = None) -> int:
        await self._gate()
        return await self.inner.count(namespace, tenant)

    async def sizes(self, limit: int = 1000) -> dict[str, int]:
        await self._gate()
        return await self.inner.sizes(limit)

    async def thresholds(self) -> dict[str, float]:
        await self._gate()
        return await self.inner.thresholds()

    async def set_threshold(self, namespace: str, value: float | None) -> None:
        await self._gate()
        await self.inner.set_threshold(namespace, value)

    async def confirm(self, scope: str, entry_id: str, asker: str, needed: int) -> bool:
        await self._gate()
        return await self.inner.confirm(scope, entry_id, asker, needed)

    async def release(self, scope: str, entry_id: str) -> bool:
        await self._gate()
        return await self.inner.release(scope, entry_id)

    async def discard(self, scope: str, entry_id: str) -> None:
        await self._gate()
        await self.inner.discard(scope, entry_id)

    async def guard(
        self,
        scope: str,
        entry_id: str,
        *,
        min_similarity: float | None = None,
        quarantine: bool = False,
    ) -> bool:
        await self._gate()
        return await self.inner.guard(
            scope, entry_id, min_similarity=min_similarity, quarantine=quarantine
        )

    async def restore(
        self, scope: str, entry_id: str, *, min_similarity: float | None, quarantined: bool
    ) -> bool:
        await self._gate()
        return await self.inner.restore(
            scope, entry_id, min_similarity=min_similarity, quarantined=quarantined
        )

    async def add_label(self, scope: str, entry_id: str, label: Label) -> bool:
        await self._gate()
        return await self.inner.add_label(scope, entry_id, label)

    async def labels(self, scope: str, entry_id: str) -> list[Label]:
        await self._gate()
        return await self.inner.labels(scope, entry_id)

    async def versions(self) -> dict[str, VersionState]:
        await self._gate()
        return await self.inner.versions()

    async def set_version(
        self, namespace: str, state: VersionState | None, expected: VersionState | None
    ) -> bool:
        await self._gate()
        return await self.inner.set_version(namespace, state, expected)

    async def live_entries(
        self, namespace: str, embedder: str, cursor: str, count: int
    ) -> tuple[list[tuple[CacheEntry, float]], str]:
        await self._gate()
        return await self.inner.live_entries(namespace, embedder, cursor, count)

    async def put_copy(self, entry: CacheEntry, vector: Vector, expires_at: float) -> bool:
        await self._gate()
        return await self.inner.put_copy(entry, vector, expires_at)

    async def swap_counts(self, namespace: str, serving: str, other: str) -> None:
        await self._gate()
        await self.inner.swap_counts(namespace, serving, other)

    async def migration(self, namespace: str, target: str) -> MigrationProgress | None:
        await self._gate()
        return await self.inner.migration(namespace, target)

    async def set_migration(self, progress: MigrationProgress) -> None:
        await self._gate()
        await self.inner.set_migration(progress)

    async def purge_version(self, namespace: str, embedder: str) -> int:
        await self._gate()
        return await self.inner.purge_version(namespace, embedder)

    async def shadow_count(
        self, namespace: str, target: str, cohort: Mapping[str, str], fields: Mapping[str, int]
    ) -> None:
        await self._gate()
        await self.inner.shadow_count(namespace, target, cohort, fields)

    async def reset_shadow(self, namespace: str, target: str) -> None:
        await self._gate()
        await self.inner.reset_shadow(namespace, target)

    async def shadow_counts(self, namespace: str, target: str) -> dict[str, dict[str, int]]:
        await self._gate()
        return await self.inner.shadow_counts(namespace, target)
