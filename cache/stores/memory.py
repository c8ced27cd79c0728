"""In-process store: the embedded default when no Redis is configured, and the reference
implementation the contract tests hold Redis to. Exact scan per scope (numpy dot)."""

from __future__ import annotations

import time
from collections import OrderedDict, defaultdict

import numpy as np

from cache.embedder import Vector
from cache.neighbourhood import Label, trim
from cache.schema import CacheEntry
from cache.stores.base import Store


class MemoryStore(Store):
    """Entries in dicts; a process restart forgets them."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[CacheEntry, Vector, float]] = {}
        self._by_scope: dict[str, list[str]] = defaultdict(list)
        self._exact: dict[tuple[str, str], str] = {}
        # Admission order per (namespace, tenant), the unit of the cap: eviction takes
        # from the front.
        self._by_namespace: dict[tuple[str, str], OrderedDict[str, None]] = defaultdict(OrderedDict)
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
