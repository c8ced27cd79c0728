"""The mission's numbers ready to scrape: hit ratio per namespace and p99 request time of
hits and of misses over the last ``metrics.view_window_s``, as gauges.

Convenience views of the counters, computed as PromQL would (``increase`` over the window,
then ``proxy.summary``'s rules): the refresher snapshots the request counters and
histogram (every worker's) each round, and a view is the difference between now and the
newest snapshot at least one window old. A namespace or outcome with no requests in the
window reads NaN, never its last value. Alerts and dashboards should keep using the
counters (deploy/prometheus); these are for someone reading ``/metrics`` by hand.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import TypeVar

from cache import Outcome
from proxy.summary import Counts, hit_ratio, quantile

LATENCY_OUTCOMES = (Outcome.HIT.value, Outcome.MISS.value)
"""Outcomes whose p99 is exported."""
K = TypeVar("K")


@dataclass(frozen=True)
class Views:
    """The windowed numbers."""

    hit_ratio: dict[str, float | None]
    """Namespace label -> hits / lookups in the window (None: no lookups)."""
    p99_s: dict[str, float | None]
    """Outcome -> p99 request time in the window (None: no requests)."""


def difference(now: Counts, then: Counts) -> Counts:
    """What happened between two snapshots. A counter lower than before was reset (a
    worker restarted): its current value is the increase, as PromQL's ``increase`` reads it."""

    return Counts(
        requests=_increase(now.requests, then.requests),
        latency=_increase(now.latency, then.latency),
    )


def _increase(new: dict[K, float], old: dict[K, float]) -> dict[K, float]:
    return {k: v - old.get(k, 0.0) if v >= old.get(k, 0.0) else v for k, v in new.items()}


class RecentCounts:
    """Snapshots of the request counters over the last ``window_s`` seconds."""

    def __init__(self, window_s: float, start: float | None = None) -> None:
        self.window_s = window_s
        start = time.time() if start is None else start
        # The counters start at zero with the process: the first baseline.
        self._snapshots: deque[tuple[float, Counts]] = deque([(start, Counts())])

    def update(self, counts: Counts, now: float | None = None) -> Views:
        """Take in a snapshot taken at ``now``; the views over the window ending there."""
        now = time.time() if now is None else now
        self._snapshots.append((now, counts))
        edge = now - self.window_s
        # Keep the newest snapshot at or before the window's start as the baseline.
        while len(self._snapshots) > 1 and self._snapshots[1][0] <= edge:
            self._snapshots.popleft()
        recent = difference(counts, self._snapshots[0][1])
        namespaces = {ns for ns, _ in counts.requests}
        return Views(
            hit_ratio={ns: hit_ratio(recent.by_outcome(ns)) for ns in sorted(namespaces)},
            p99_s={o: quantile(0.99, recent.buckets(o)) for o in LATENCY_OUTCOMES},
        )
