"""Which embedding version each namespace serves, migrates to and keeps for rollback, as a
gauge set by ``proxy.refresher`` from the states this replica last read (``cache.versions``).
Versions are labelled by their config name (``cache.embedding_versions``, a bounded set), or
``_unloaded`` for a version this replica has not loaded."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Gauge

from cache.version_routing import VersionRouting

UNLOADED = "_unloaded"
ROLES = ("serving", "target", "previous")


class VersionGauges:
    """``vetcache_embedding_version{namespace,role,version}``: 1 for each version a
    namespace has in a role (namespaces without a rollout state serve the primary and are
    not listed)."""

    def __init__(
        self, registry: CollectorRegistry, namespace: Callable[[str], str], other: str
    ) -> None:
        self.gauge = Gauge(
            "vetcache_embedding_version",
            "Embedding version per namespace and role (serving, target, previous): 1.",
            ("namespace", "role", "version"),
            registry=registry,
            multiprocess_mode="mostrecent",
        )
        self._namespace = namespace
        self._other = other
        self._shown: set[tuple[str, str, str]] = set()

    def set(self, routing: VersionRouting) -> None:
        """The gauge from the states ``routing`` holds; series of earlier states removed."""
        shown = set()
        for namespace, state in routing.states.items():
            label = self._namespace(namespace)
            if label == self._other:
                continue
            roles: Mapping[str, str | None] = {
                "serving": state.serving, "target": state.target, "previous": state.previous,
            }  # fmt: skip
            for role, fingerprint in roles.items():
                if fingerprint is not None:
                    name = routing.embedders.name_of(fingerprint) or UNLOADED
                    shown.add((label, role, name))
        for gone in self._shown - shown:
            self.gauge.remove(*gone)
        for series in shown:
            self.gauge.labels(*series).set(1)
        self._shown = shown
