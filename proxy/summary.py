"""The request numbers read back from the metrics: requests by outcome, the hit ratio and
latency percentiles. One place for their rules, used by the built-in page
(``/admin/summary``, since start) and the sliding-window gauges (``proxy.views``);
dashboards use PromQL on the counters themselves."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from cache import Outcome
from proxy.exposition import exposed

LOOKUPS = (Outcome.HIT, Outcome.MISS, Outcome.FAIL_OPEN)
"""Outcomes of requests that looked up: the hit ratio's denominator (as in the recording
rules of deploy/prometheus)."""


@dataclass
class Counts:
    """The request counters at one moment (every worker's)."""

    requests: dict[tuple[str, str], float] = field(default_factory=dict)
    """(namespace label, outcome) -> requests."""
    latency: dict[tuple[str, float], float] = field(default_factory=dict)
    """(outcome, bucket upper bound) -> cumulative requests at most that long."""

    def by_outcome(self, namespace: str | None = None) -> dict[str, float]:
        """Requests per outcome, of one namespace label or of all."""
        found = {outcome.value: 0.0 for outcome in Outcome}
        for (ns, outcome), count in self.requests.items():
            if namespace is None or ns == namespace:
                found[outcome] = found.get(outcome, 0.0) + count
        return found

    def buckets(self, outcome: str | None = None) -> list[tuple[float, float]]:
        """Cumulative latency buckets of one outcome, or summed over all."""
        summed: dict[float, float] = {}
        for (each, bound), count in self.latency.items():
            if outcome is None or each == outcome:
                summed[bound] = summed.get(bound, 0.0) + count
        return sorted(summed.items())


def read_counts(registry: CollectorRegistry) -> Counts:
    """The request counters now (all workers in multiprocess mode)."""
    counts = Counts()
    for family in exposed(registry).collect():
        for sample in family.samples:
            if sample.name == "vetcache_requests_total":
                key = (sample.labels.get("namespace", ""), sample.labels.get("outcome", ""))
                counts.requests[key] = counts.requests.get(key, 0.0) + sample.value
            elif sample.name == "vetcache_request_duration_seconds_bucket":
                where = (sample.labels.get("outcome", ""), float(sample.labels["le"]))
                counts.latency[where] = counts.latency.get(where, 0.0) + sample.value
    return counts


def hit_ratio(by_outcome: Mapping[str, float]) -> float | None:
    """Hits among requests that looked up; None without any."""
    looked_up = sum(by_outcome.get(o.value, 0.0) for o in LOOKUPS)
    return by_outcome.get(Outcome.HIT.value, 0.0) / looked_up if looked_up else None


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """``q``-quantile from cumulative (upper bound, count) buckets, interpolated linearly
    inside the bucket as PromQL's ``histogram_quantile`` does."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # the top bucket has no upper edge: its lower one
            inside = count - lower_count
            share = (rank - lower_count) / inside if inside > 0 else 1.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return buckets[-1][0]


def summary(registry: CollectorRegistry) -> dict[str, Any]:
    """Since the gateway started (all workers): requests by outcome, hit ratio, latency
    p50/p99 overall and for hits. For the built-in page; dashboards use PromQL."""
    counts = read_counts(registry)
    outcomes = counts.by_outcome()

    def percentiles(outcome: str | None) -> dict[str, float | None]:
        buckets = counts.buckets(outcome)
        return {"p50": quantile(0.5, buckets), "p99": quantile(0.99, buckets)}

    return {
        "requests": {k: int(v) for k, v in outcomes.items()},
        "hit_ratio": hit_ratio(outcomes),
        "latency_s": percentiles(None),
        "hit_latency_s": percentiles(Outcome.HIT.value),
    }
