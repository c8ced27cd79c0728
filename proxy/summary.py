"""The numbers of the built-in page (``/admin/summary``): requests by outcome, hit ratio and
latency percentiles since start, read back from the metrics (dashboards use PromQL)."""

from __future__ import annotations

import math
from typing import Any

from prometheus_client import CollectorRegistry

from cache import Outcome
from proxy.exposition import exposed

LOOKUPS = (Outcome.HIT, Outcome.MISS, Outcome.FAIL_OPEN)
"""Outcomes of requests that looked up: the hit ratio's denominator (as in the recording
rules of deploy/prometheus)."""


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
    outcomes: dict[str, float] = {outcome.value: 0.0 for outcome in Outcome}
    latency: dict[str, dict[float, float]] = {}
    for family in exposed(registry).collect():
        for sample in family.samples:
            if sample.name == "vetcache_requests_total":
                outcome = sample.labels.get("outcome", "")
                outcomes[outcome] = outcomes.get(outcome, 0.0) + sample.value
            elif sample.name == "vetcache_request_duration_seconds_bucket":
                bound = float(sample.labels["le"])
                for group in ("all", sample.labels.get("outcome", "")):
                    per = latency.setdefault(group, {})
                    per[bound] = per.get(bound, 0.0) + sample.value
    looked_up = sum(outcomes[o] for o in LOOKUPS)

    def percentiles(group: str) -> dict[str, float | None]:
        buckets = list(latency.get(group, {}).items())
        return {"p50": quantile(0.5, buckets), "p99": quantile(0.99, buckets)}

    return {
        "requests": {k: int(v) for k, v in outcomes.items()},
        "hit_ratio": outcomes[Outcome.HIT] / looked_up if looked_up else None,
        "latency_s": percentiles("all"),
        "hit_latency_s": percentiles("hit"),
    }
