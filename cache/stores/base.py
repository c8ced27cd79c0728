"""The interface every vector store implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

from cache.embedder import Vector
from cache.neighbourhood import Label
from cache.schema import CacheEntry


class Store(ABC):
    """Entries with vectors, partitioned by scope. Similarity is cosine on unit vectors."""

    async def open(self, dimension: int) -> None:  # noqa: B027 - optional hook
        """Prepare for vectors of ``dimension`` (create indexes); called once at start."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    @abstractmethod
    async def get_exact(self, scope: str, exact: str) -> CacheEntry | None:
        """The live entry admitted under this exact key, if any (a pending one too, with
        ``pending`` set: the caller must not serve it)."""

    @abstractmethod
    async def search(
        self, scope: str, vector: Vector, k: int = 1
    ) -> list[tuple[CacheEntry, float]]:
        """Up to ``k`` live, released (not pending) entries of ``scope`` with their
        similarity, most similar first."""

    @abstractmethod
    async def put(
        self, entry: CacheEntry, vector: Vector, ttl_s: int | None, cap: int | None
    ) -> None:
        """Admit ``entry``; expire it after ``ttl_s``; keep at most ``cap`` entries of its
        tenant in its namespace by evicting that tenant's oldest (one tenant's admissions
        never evict another's). A ``pending`` entry is kept out of searches until
        ``confirm`` or ``release`` lets it in."""

    @abstractmethod
    async def confirm(self, scope: str, entry_id: str, asker: str, needed: int) -> bool:
        """Count ``asker`` (once) among the distinct askers of a pending entry; release it
        when ``needed`` have asked. True when the entry is servable now."""

    @abstractmethod
    async def release(self, scope: str, entry_id: str) -> bool:
        """Let a pending entry be served and searched. True when the entry is servable now
        (it was released, now or before); False when it no longer exists."""

    @abstractmethod
    async def discard(self, scope: str, entry_id: str) -> None:
        """Remove a pending entry (it failed its admission audit) and its exact pointer, so
        the next identical request is admitted afresh. A released entry is left alone."""

    @abstractmethod
    async def count(self, namespace: str, tenant: str | None = None) -> int:
        """Live entries in ``namespace`` (only ``tenant``'s, when given)."""

    @abstractmethod
    async def sizes(self, limit: int = 1000) -> dict[str, int]:
        """Live entries per namespace, all tenants together, for at most ``limit``
        namespaces (metrics)."""

    @abstractmethod
    async def thresholds(self) -> dict[str, float]:
        """Live per-namespace thresholds (set at run time, shared by every replica)."""

    @abstractmethod
    async def set_threshold(self, namespace: str, value: float | None) -> None:
        """Set the live threshold of ``namespace``; None removes it."""

    @abstractmethod
    async def guard(
        self,
        scope: str,
        entry_id: str,
        *,
        min_similarity: float | None = None,
        quarantine: bool = False,
    ) -> bool:
        """Raise an entry's own minimum similarity (never lower it) and/or quarantine it.
        False when the entry no longer exists."""

    @abstractmethod
    async def restore(
        self, scope: str, entry_id: str, *, min_similarity: float | None, quarantined: bool
    ) -> bool:
        """Set an entry's guard to exactly this, lower or lifted included (a person's label
        overturned the verdict that raised it): its own bar (None: none) and its quarantine.
        False when the entry no longer exists."""

    @abstractmethod
    async def add_label(self, scope: str, entry_id: str, label: Label) -> bool:
        """Keep ``label`` among the entry's labels (replacing the one with its id; at most
        ``LABELS_KEPT``, ``neighbourhood.trim``); a false one flags the entry ``labelled``.
        The labels expire with the entry. False when the entry no longer exists."""

    @abstractmethod
    async def labels(self, scope: str, entry_id: str) -> list[Label]:
        """The entry's labels, in no particular order (none: an empty list)."""
