"""A lookup's candidates as the serving policy reads them: the nearest entries of a scope
from the vector search, and the labels of flagged entries, read in one round trip."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from cache.embedder import Vector
from cache.neighbourhood import neighbours
from cache.observe import Observer
from cache.schema import CacheKey, Candidate
from cache.stores.base import Store


async def searched(
    store: Store, key: CacheKey, vector: Vector, k: int, observer: Observer
) -> tuple[Candidate, ...]:
    """The ``k`` entries of ``key``'s scope nearest ``vector``, most similar first, labelled."""
    with observer.timed("vector_search"):
        found = await store.search(key.scope, vector, k=k)
    return await labelled(
        store,
        [
            Candidate(entry=entry, similarity=min(1.0, max(-1.0, similarity)), exact=False)
            for entry, similarity in found
        ],
        vector,
    )


async def labelled(
    store: Store, candidates: Sequence[Candidate], vector: Vector | None
) -> tuple[Candidate, ...]:
    """``candidates`` with the neighbours of the ``labelled`` ones (their labels read in one
    concurrent round trip, within the lookup's deadline; unflagged entries cost nothing).
    ``vector`` None: an exact repeat."""
    flagged = [c for c in candidates if c.entry.labelled]
    if not flagged:
        return tuple(candidates)
    read = [store.labels(c.entry.scope, c.entry.id) for c in flagged]
    found = {
        c.entry.id: neighbours(labels, vector, c.similarity)
        for c, labels in zip(flagged, await asyncio.gather(*read), strict=True)
    }
    return tuple(
        c.model_copy(update={"neighbours": found[c.entry.id]}) if c.entry.labelled else c
        for c in candidates
    )
