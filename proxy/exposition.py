"""``/metrics``: this process's metrics, or every worker's.

With ``vetcache serve --workers N`` every worker process writes its samples to
``PROMETHEUS_MULTIPROC_DIR`` (the CLI sets it) and ``/metrics`` on any of them renders the
sum over all of them (prometheus-client's multiprocess mode); gauges of shared state take
the most recent write (``mostrecent``).
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector


def multiprocess_dir() -> str | None:
    """The multiprocess directory, when this process is one of several workers."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposed(registry: CollectorRegistry) -> CollectorRegistry:
    """This registry, or one that reads every worker's samples in multiprocess mode."""
    directory = multiprocess_dir()
    if directory is None:
        return registry
    combined = CollectorRegistry()
    MultiProcessCollector(combined, path=directory)  # type: ignore[no-untyped-call]
    return combined


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The exposition for ``/metrics``: this registry, or every worker's in multiprocess mode."""
    return generate_latest(exposed(registry)), CONTENT_TYPE_LATEST
