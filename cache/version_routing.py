"""Which embedding version each namespace serves and migrates to, on this replica: the
store's ``VersionState`` per namespace (re-read every ``cache.threshold_refresh_s``, with the
live thresholds) against the versions loaded here (``cache.embedder_set``).

A namespace without a state serves the primary version. A namespace whose serving version is
not loaded here is not looked up at all (``version_unloaded``): its requests go upstream
rather than meet entries of another version.
"""

from __future__ import annotations

from cache.embedder import Embedder
from cache.embedder_set import EmbedderSet
from cache.errors import NotCacheable
from cache.versions import VersionState


class VersionRouting:
    """The versions in force per namespace, as last read from the store."""

    def __init__(self, embedders: EmbedderSet) -> None:
        self.embedders = embedders
        self.states: dict[str, VersionState] = {}

    def serving_fingerprint(self, namespace: str) -> str:
        state = self.states.get(namespace)
        return state.serving if state is not None else self.embedders.primary.fingerprint

    def serving(self, namespace: str) -> Embedder:
        """The embedder ``namespace`` serves (``NotCacheable`` when not loaded here)."""
        fingerprint = self.serving_fingerprint(namespace)
        embedder = self.embedders.by_fingerprint(fingerprint)
        if embedder is None:
            raise NotCacheable(
                f"the namespace serves embedding version {fingerprint}, not loaded here",
                "version_unloaded",
            )
        return embedder

    def target(self, namespace: str) -> Embedder | None:
        """The loaded embedder ``namespace`` is migrating to, if any."""
        state = self.states.get(namespace)
        if state is None or state.target is None:
            return None
        return self.embedders.by_fingerprint(state.target)

    def embedder(self, fingerprint: str) -> Embedder:
        """The loaded embedder of a key's fingerprint (keys are made here, for loaded ones)."""
        embedder = self.embedders.by_fingerprint(fingerprint)
        if embedder is None:
            raise NotCacheable(f"embedding version {fingerprint} is not loaded", "version_unloaded")
        return embedder
