"""In-process store: the embedded default when no Redis is configured, and the reference
implementation the contract tests hold Redis to. Exact scan per scope (numpy dot)."""

from __future__ import annotations

import time
from collections import OrderedDict, defaultdict
from collections.abc import Mapping

import numpy as np

from cache.embedder import Vector
from cache.invalidation import MATCHED_FIELDS, Invalidation
from cache.neighbourhood import Label, trim
from cache.schema import CacheEntry
from cache.stores.base import Store
from cache.versions import MigrationProgress, VersionState, version_id

Order = OrderedDict[str, None]


class MemoryStore(Store):
    """Entries in dicts; a process restart forgets them."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[CacheEntry, Vector, float]] = {}
        self._by_scope: dict[str, list[str]] = defaultdict(list)
        self._exact: dict[tuple[str, str], str] = {}
        # Admission order per (namespace, tenant), the unit of the cap: eviction takes
        # from the front; ``touch`` moves a served entry to the back (with one TTL, the
        # front is what Redis evicts too: the entry closest to expiry).
        self._by_namespace: dict[tuple[str, str], Order] = defaultdict(OrderedDict)
        # Copies (entries of a version the namespace does not serve), per (version id,
        # namespace, tenant): not counted, never evicted by the cap.
        self._copies: dict[tuple[str, str, str], Order] = defaultdict(OrderedDict)
        self._versions: dict[str, VersionState] = {}
        self._migrations: dict[tuple[str, str], MigrationProgress] = {}
        self._shadow: dict[tuple[str, str], dict[str, dict[str, int]]] = {}
        self._thresholds: dict[str, float] = {}
        self._askers: dict[str, set[str]] = defaultdict(set)  # pending entry -> who asked
        self._labels: dict[str, dict[str, Label]] = {}  # entry -> label id -> label

    def _live(self, entry_id: str, now: float) -> tuple[CacheEntry, Vector] | None:
        found = self._entries.get(entry_id)
        if found is None:
            return None
        entry, vector, expires = found
        if expires <= now:
            self._remove(entry_id)
            return None
        return entry, vector

    def _remove(self, entry_id: str) -> None:
        entry, _, _ = self._entries.pop(entry_id)
        ids = self._by_scope.get(entry.scope)
        if ids is not None and entry_id in ids:
            ids.remove(entry_id)
        if self._exact.get((entry.scope, entry.exact)) == entry_id:
            del self._exact[(entry.scope, entry.exact)]
        self._by_namespace[(entry.namespace, entry.tenant)].pop(entry_id, None)
        for (_, namespace, tenant), order in self._copies.items():
            if (namespace, tenant) == (entry.namespace, entry.tenant):
                order.pop(entry_id, None)
        self._askers.pop(entry_id, None)
        self._labels.pop(entry_id, None)

    async def get_exact(self, scope: str, exact: str) -> CacheEntry | None:
        entry_id = self._exact.get((scope, exact))
        live = self._live(entry_id, time.time()) if entry_id else None
        return live[0] if live else None

    async def search(
        self, scope: str, vector: Vector, k: int = 1
    ) -> list[tuple[CacheEntry, float]]:
        now = time.time()
        found = (self._live(i, now) for i in list(self._by_scope.get(scope, ())))
        live = [x for x in found if x is not None and not x[0].pending]
        if not live:
            return []
        similarities = np.stack([v for _, v in live]) @ vector
        order = np.argsort(-similarities)[:k]
        return [(live[i][0], float(similarities[i])) for i in order]

    async def put(
        self, entry: CacheEntry, vector: Vector, ttl_s: int | None, cap: int | None
    ) -> None:
        expires = entry.created_at + ttl_s if ttl_s else float("inf")
        self._entries[entry.id] = (entry, vector.astype(np.float32), expires)
        self._by_scope[entry.scope].append(entry.id)
        self._exact[(entry.scope, entry.exact)] = entry.id
        order = self._by_namespace[(entry.namespace, entry.tenant)]
        order[entry.id] = None
        while cap is not None and len(order) > cap:
            self._remove(next(iter(order)))

    async def touch(self, entry: CacheEntry, ttl_s: int) -> bool:
        now = time.time()
        live = self._live(entry.id, now)
        if live is None or live[0].scope != entry.scope:
            return False
        current, vector, expires = self._entries[entry.id]
        self._entries[entry.id] = (current, vector, max(expires, now + ttl_s))
        order = self._by_namespace.get((current.namespace, current.tenant))
        if order is not None and entry.id in order:
            order.move_to_end(entry.id)
        return True

    async def confirm(self, scope: str, entry_id: str, asker: str, needed: int) -> bool:
        live = self._live(entry_id, time.time())
        if live is None or live[0].scope != scope:
            return False
        if not live[0].pending:
            return True
        askers = self._askers[entry_id]
        askers.add(asker)
        if len(askers) < needed:
            return False
        return await self.release(scope, entry_id)

    async def release(self, scope: str, entry_id: str) -> bool:
        found = self._entries.get(entry_id)
        if found is None or found[0].scope != scope or self._live(entry_id, time.time()) is None:
            return False
        entry, vector, expires = found
        self._entries[entry_id] = (entry.model_copy(update={"pending": False}), vector, expires)
        self._askers.pop(entry_id, None)
        return True

    async def discard(self, scope: str, entry_id: str) -> None:
        found = self._entries.get(entry_id)
        if found is not None and found[0].scope == scope and found[0].pending:
            self._remove(entry_id)

    async def invalidate(self, which: Invalidation) -> int:
        named = self._entries.get(which.entry) if which.entry else None
        if named is not None and named[0].origin:  # a copy: its original's family
            which = which.model_copy(update={"entry": named[0].origin})
        now = time.time()
        fields = set(MATCHED_FIELDS)
        doomed = [
            entry_id
            for entry_id, (entry, _, _) in list(self._entries.items())
            if self._live(entry_id, now) is not None
            and which.matches(entry.model_dump(include=fields))
        ]
        for entry_id in doomed:
            self._remove(entry_id)
        return len(doomed)

    async def count(self, namespace: str, tenant: str | None = None) -> int:
        now = time.time()
        return sum(
            1
            for (name, owner), order in list(self._by_namespace.items())
            if name == namespace and tenant in (None, owner)
            for i in list(order)
            if self._live(i, now)
        )

    async def sizes(self, limit: int = 1000) -> dict[str, int]:
        names = sorted({name for name, _ in self._by_namespace})[:limit]
        return {name: await self.count(name) for name in names}

    async def thresholds(self) -> dict[str, float]:
        return dict(self._thresholds)

    async def set_threshold(self, namespace: str, value: float | None) -> None:
        if value is None:
            self._thresholds.pop(namespace, None)
        else:
            self._thresholds[namespace] = value

    async def guard(
        self,
        scope: str,
        entry_id: str,
        *,
        min_similarity: float | None = None,
        quarantine: bool = False,
    ) -> bool:
        found = self._entries.get(entry_id)
        if found is None or found[0].scope != scope:
            return False
        entry, vector, expires = found
        update: dict[str, object] = {}
        if min_similarity is not None:
            update["min_similarity"] = max(min_similarity, entry.min_similarity or -1.0)
        if quarantine:
            update["quarantined"] = True
        self._entries[entry_id] = (entry.model_copy(update=update), vector, expires)
        return True

    async def restore(
        self, scope: str, entry_id: str, *, min_similarity: float | None, quarantined: bool
    ) -> bool:
        found = self._entries.get(entry_id)
        if found is None or found[0].scope != scope:
            return False
        entry, vector, expires = found
        update = {"min_similarity": min_similarity, "quarantined": quarantined}
        self._entries[entry_id] = (entry.model_copy(update=update), vector, expires)
        return True

    async def add_label(self, scope: str, entry_id: str, label: Label) -> bool:
        live = self._live(entry_id, time.time())
        if live is None or live[0].scope != scope:
            return False
        labels = self._labels.setdefault(entry_id, {})
        labels[label.id] = label
        trim(labels)
        if not label.correct:
            entry, vector, expires = self._entries[entry_id]
            self._entries[entry_id] = (entry.model_copy(update={"labelled": True}), vector, expires)
        return True

    async def labels(self, scope: str, entry_id: str) -> list[Label]:
        live = self._live(entry_id, time.time())
        if live is None or live[0].scope != scope:
            return []
        return list(self._labels.get(entry_id, {}).values())

    async def versions(self) -> dict[str, VersionState]:
        return dict(self._versions)

    async def set_version(
        self, namespace: str, state: VersionState | None, expected: VersionState | None
    ) -> bool:
        if self._versions.get(namespace) != expected:
            return False
        if state is None:
            self._versions.pop(namespace, None)
        else:
            self._versions[namespace] = state
        return True

    async def live_entries(
        self, namespace: str, embedder: str, cursor: str, count: int
    ) -> tuple[list[tuple[CacheEntry, float]], str]:
        # Ordered by id: a cursor is the last id returned.
        now = time.time()
        ids = sorted(
            entry_id
            for entry_id, (entry, _, _) in list(self._entries.items())
            if entry.namespace == namespace
            and entry.embedder == embedder
            and entry_id > cursor
            and not entry.pending
            and self._live(entry_id, now) is not None
        )[:count]
        page = [(self._entries[i][0], self._entries[i][2]) for i in ids]
        return page, ids[-1] if len(ids) == count else ""

    async def put_copy(self, entry: CacheEntry, vector: Vector, expires_at: float) -> bool:
        now = time.time()
        if expires_at <= now or self._live(entry.id, now) is not None:
            return False
        self._entries[entry.id] = (entry, vector.astype(np.float32), expires_at)
        self._by_scope[entry.scope].append(entry.id)
        pointer = self._exact.get((entry.scope, entry.exact))
        if pointer is None or self._live(pointer, now) is None:
            self._exact[(entry.scope, entry.exact)] = entry.id
        self._copies[(version_id(entry.embedder), entry.namespace, entry.tenant)][entry.id] = None
        return True

    async def swap_counts(self, namespace: str, serving: str, other: str) -> None:
        served, target = version_id(serving), version_id(other)
        tenants = {t for n, t in self._by_namespace if n == namespace} | {
            t for v, n, t in self._copies if (v, n) == (target, namespace)
        }
        for tenant in tenants:
            counted = self._by_namespace.pop((namespace, tenant), OrderedDict())
            self._by_namespace[(namespace, tenant)] = self._copies.pop(
                (target, namespace, tenant), OrderedDict()
            )
            self._copies[(served, namespace, tenant)].update(counted)

    async def migration(self, namespace: str, target: str) -> MigrationProgress | None:
        return self._migrations.get((namespace, target))

    async def set_migration(self, progress: MigrationProgress) -> None:
        self._migrations[(progress.namespace, progress.target)] = progress

    async def purge_version(self, namespace: str, embedder: str) -> int:
        doomed = [
            entry_id
            for entry_id, (entry, _, _) in list(self._entries.items())
            if entry.namespace == namespace and entry.embedder == embedder
        ]
        for entry_id in doomed:
            self._remove(entry_id)
        self._migrations.pop((namespace, embedder), None)
        self._shadow.pop((namespace, embedder), None)
        return len(doomed)

    async def shadow_count(
        self, namespace: str, target: str, cohort: Mapping[str, str], fields: Mapping[str, int]
    ) -> None:
        counts = self._shadow.setdefault((namespace, target), {})
        for dimension, value in cohort.items():
            row = counts.setdefault(f"{dimension}={value}", {})
            for name, n in fields.items():
                row[name] = row.get(name, 0) + n

    async def reset_shadow(self, namespace: str, target: str) -> None:
        self._shadow.pop((namespace, target), None)

    async def shadow_counts(self, namespace: str, target: str) -> dict[str, dict[str, int]]:
        counts = self._shadow.get((namespace, target), {})
        return {cohort: dict(row) for cohort, row in counts.items()}
