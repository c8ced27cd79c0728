"""The embedding versions a replica loads: the primary (``cache.embedding_model``, named
``cache.embedding_version``) and the others (``cache.embedding_versions``), found by name
or by fingerprint.

A version is known to the store by its fingerprint (``cache.versions``) and to people by its
name in the config; the two meet here, once every model is loaded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping

from cache.embedder import Embedder
from cache.errors import EmbedderError


class EmbedderSet:
    """The primary embedder and the other versions, by name."""

    def __init__(
        self, primary: Embedder, name: str = "base", others: Mapping[str, Embedder] | None = None
    ) -> None:
        self.primary = primary
        self.primary_name = name
        self._named: dict[str, Embedder] = {name: primary, **(others or {})}

    async def open(self) -> None:
        """Load every version (concurrently: each loads on its own thread). Two names for
        one fingerprint are refused: the store could not tell them apart."""
        await asyncio.gather(*(embedder.open() for embedder in self._named.values()))
        seen: dict[str, str] = {}
        for name, embedder in self._named.items():
            other = seen.setdefault(embedder.fingerprint, name)
            if other != name:
                raise EmbedderError(
                    f"embedding versions {other!r} and {name!r} are the same model "
                    f"({embedder.fingerprint})"
                )
        if len({e.dimension for e in self._named.values()}) > 1:
            dims = {name: e.dimension for name, e in self._named.items()}
            raise EmbedderError(f"embedding versions differ in dimension: {dims}")

    async def close(self) -> None:
        await asyncio.gather(*(embedder.close() for embedder in self._named.values()))

    def __iter__(self) -> Iterator[tuple[str, Embedder]]:
        return iter(self._named.items())

    def named(self, name: str) -> Embedder | None:
        """The version called ``name`` in the config, if loaded."""
        return self._named.get(name)

    def by_fingerprint(self, fingerprint: str) -> Embedder | None:
        """The loaded version with this fingerprint, if any."""
        for embedder in self._named.values():
            if embedder.fingerprint == fingerprint:
                return embedder
        return None

    def name_of(self, fingerprint: str) -> str | None:
        """The config's name for the version with this fingerprint, if loaded."""
        for name, embedder in self._named.items():
            if embedder.fingerprint == fingerprint:
                return name
        return None
