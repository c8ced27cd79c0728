"""The windowed hit ratio and p99 gauges: a view of the counters over the last window, on
a real exposition; nothing stale once the window has passed."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cache import Outcome
from proxy.metrics import Metrics
from proxy.summary import quantile, read_counts
from proxy.views import RecentCounts

HIT, MISS, FAIL_OPEN = Outcome.HIT, Outcome.MISS, Outcome.FAIL_OPEN


def page(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    """The view gauges of a real exposition, by (name, its one label's value)."""
    text = generate_latest(registry).decode()
    return {
        (s.name, next(iter(s.labels.values()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name in ("vetcache_hit_ratio", "vetcache_request_duration_p99_seconds")
    }


def test_hit_ratio_and_p99_over_the_window_then_nan() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    recent = RecentCounts(300, start=0.0)
    for outcome, seconds in [(HIT, 0.002)] * 3 + [(MISS, 0.4), (FAIL_OPEN, 0.5)]:
        metrics.request("shop", "m", outcome, seconds, tenant="t")
    metrics.request("shop", "m", Outcome.BYPASS, 0.3, tenant="t")  # no lookup: not counted
    metrics.set_views(recent.update(read_counts(registry), now=10.0))
    seen = page(registry)
    assert seen[("vetcache_hit_ratio", "shop")] == pytest.approx(3 / 5)
    hits = [(b, c) for (o, b), c in read_counts(registry).latency.items() if o == "hit"]
    assert seen[("vetcache_request_duration_p99_seconds", "hit")] == quantile(0.99, hits)
    assert 0.001 < seen[("vetcache_request_duration_p99_seconds", "hit")] <= 0.002
    assert 0.25 < seen[("vetcache_request_duration_p99_seconds", "miss")] <= 0.5

    # Later: only misses in the last window; the early hits have left it.
    metrics.set_views(recent.update(read_counts(registry), now=200.0))
    metrics.request("shop", "m", MISS, 0.02, tenant="t")
    metrics.set_views(recent.update(read_counts(registry), now=400.0))
    seen = page(registry)
    assert seen[("vetcache_hit_ratio", "shop")] == 0.0
    assert math.isnan(seen[("vetcache_request_duration_p99_seconds", "hit")])
    assert 0.015 < seen[("vetcache_request_duration_p99_seconds", "miss")] <= 0.02
    # Nothing at all in the window: NaN, not the last value.
    metrics.set_views(recent.update(read_counts(registry), now=1000.0))
    assert math.isnan(page(registry)[("vetcache_hit_ratio", "shop")])
