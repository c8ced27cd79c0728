"""The interface every vector store implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING

from cache.embedder import Vector
from cache.neighbourhood import Label
from cache.schema import CacheEntry
from cache.versions import MigrationProgress, VersionState

if TYPE_CHECKING:
    from cache.invalidation import Invalidation


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
    async def touch(self, entry: CacheEntry, ttl_s: int) -> bool:
        """A served entry lives ``ttl_s`` more seconds from now (never less than it had):
        its hash, its exact pointer while that names it, its labels, and its score in its
        namespace's count, so eviction at the cap (closest to expiry first) takes the least
        recently served. False when it no longer exists (``cache.sliding_ttl``)."""

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
    async def invalidate(self, which: Invalidation) -> int:
        """Delete every entry ``which`` matches (pending ones and copies of other embedding
        versions too) with its exact pointer (if it still names it), labels and askers, and
        drop it from its count; how many entries were deleted."""

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

    # Embedding versions (``cache.versions``, ``cache.migration``). Entries of a version
    # other than the one a namespace serves are "copies": searchable in their own scopes,
    # counted in a set of their own, never against the namespace's cap.

    @abstractmethod
    async def versions(self) -> dict[str, VersionState]:
        """Each namespace's version state (a namespace without one serves the primary)."""

    @abstractmethod
    async def set_version(
        self, namespace: str, state: VersionState | None, expected: VersionState | None
    ) -> bool:
        """Compare-and-set: replace the namespace's state (None: remove it) if it is
        ``expected`` now (None: it has none), atomically across replicas. False when it
        was not (someone else changed it first)."""

    @abstractmethod
    async def live_entries(
        self, namespace: str, embedder: str, cursor: str, count: int
    ) -> tuple[list[tuple[CacheEntry, float]], str]:
        """About ``count`` served (not pending) live entries of ``namespace`` (every tenant)
        made by ``embedder``, with their expiry (unix time, ``inf`` for none), after
        ``cursor`` ("" to start) in a stable order; and the cursor to continue from (""
        when the walk is done). A page may hold fewer (even none) before the end."""

    @abstractmethod
    async def put_copy(self, entry: CacheEntry, vector: Vector, expires_at: float) -> bool:
        """Write an entry of a version the namespace does not serve (its own scope, exact
        key and id), its guards as given, expiring at ``expires_at`` (unix time), counted
        in its version's set, not against the cap. An exact pointer already there (an
        admission's) is kept. False when the entry exists already (a resumed migration)
        or has expired."""

    @abstractmethod
    async def swap_counts(self, namespace: str, serving: str, other: str) -> None:
        """Count ``other``'s entries as the namespace's (``count``, ``sizes``, the cap) and
        keep ``serving``'s as copies: run at cutover and rollback, per tenant atomically."""

    @abstractmethod
    async def migration(self, namespace: str, target: str) -> MigrationProgress | None:
        """The saved progress of migrating ``namespace`` to ``target``, if any."""

    @abstractmethod
    async def set_migration(self, progress: MigrationProgress) -> None:
        """Save a migration's progress."""

    @abstractmethod
    async def purge_version(self, namespace: str, embedder: str) -> int:
        """Delete every entry of ``namespace`` made by ``embedder`` (pending ones too) with
        its pointers and labels, and the progress and shadow counts of a migration to it
        (a later migration starts afresh); how many entries were deleted."""

    @abstractmethod
    async def shadow_count(
        self, namespace: str, target: str, cohort: Mapping[str, str], fields: Mapping[str, int]
    ) -> None:
        """Add ``fields`` (counter -> increment) to the shadow counts of ``target`` in
        ``namespace`` for each ``dimension=value`` of ``cohort``."""

    @abstractmethod
    async def reset_shadow(self, namespace: str, target: str) -> None:
        """Forget the shadow counts of ``target`` in ``namespace`` (its migration is done:
        the comparison restarts against the complete version)."""

    @abstractmethod
    async def shadow_counts(self, namespace: str, target: str) -> dict[str, dict[str, int]]:
        """The shadow counts of ``target``: ``dimension=value`` -> counter -> total."""
