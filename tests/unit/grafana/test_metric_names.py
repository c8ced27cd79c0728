"""Every metric name the dashboard reads exists: in the hand-written catalog, in the series
``proxy.metrics.Metrics`` registers, or as a recording rule; and the name extraction itself."""

from __future__ import annotations

import pytest

from tests.unit.grafana.catalog import CATALOG_SERIES, recorded_names, registry_series
from tests.unit.grafana.dashboard import NAMESPACE_QUERY, Json, all_exprs
from tests.unit.grafana.promql import metric_names, unknown_names, variable_expr


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            "histogram_quantile(0.99, sum by (le, stage) (rate("
            'vetcache_stage_duration_seconds_bucket{stage=~"embed|vector_search"}[5m])))',
            {"vetcache_stage_duration_seconds_bucket"},
        ),
        (
            "sum without (instance) (rate(foo_total{a=\"x{y} by (z)\", b='rate(bar)'}[5m] "
            "offset 1h30m)) > bool 1.5e3",
            {"foo_total"},
        ),
        (
            "(sum by (namespace) (rate(a_total[$__rate_interval])) or 0 * sum by (namespace) "
            "(rate(b_total[$__rate_interval]))) / on (namespace) group_left (model) "
            "(c_info > 0) unless ignoring (kind) d",
            {"a_total", "b_total", "c_info", "d"},
        ),
        (
            "namespace:vetcache_hits_per_lookup:ratio_rate5m > 0.05 and on (namespace) "
            ":vetcache_audit_queue_depth:max >= 30",
            {"namespace:vetcache_hits_per_lookup:ratio_rate5m", ":vetcache_audit_queue_depth:max"},
        ),
        ('label_replace(up{job="a"}, "dst", "$1", "src", "(.*)")', {"up"}),
        (
            'sum(increase(x_total{namespace=~"$namespace"}[$__range])) / ${__range_s} * $rate',
            {"x_total"},
        ),
        (
            "topk(5, max(vetcache_threshold) @ end()) or vector(0) + Inf - NaN",
            {"vetcache_threshold"},
        ),
        ("sum(rate(x_total[5m])) by (namespace) / sum(y) without (le)", {"x_total", "y"}),
    ],
)
def test_metric_names_are_extracted(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


@pytest.mark.parametrize(
    ("query", "names"),
    [
        (NAMESPACE_QUERY, {"vetcache_requests_total"}),
        (
            'label_values(vetcache_requests_total{outcome="hit"}, model)',
            {"vetcache_requests_total"},
        ),
        ("label_values(namespace)", set()),
        ("query_result(topk(3, sum by (namespace) (x_total)))", {"x_total"}),
    ],
)
def test_variable_queries_are_read_as_promql(query: str, names: set[str]) -> None:
    assert metric_names(variable_expr(query)) == names


def test_an_unknown_metric_is_reported() -> None:
    exprs = {
        "made up": 'sum by (namespace) (rate(vetcache_nope_total{namespace=~"$namespace"}[5m]))'
        " / sum by (namespace) (rate(vetcache_requests_total[5m]))"
    }
    assert unknown_names(exprs, CATALOG_SERIES) == {"made up": {"vetcache_nope_total"}}


def test_dashboard_reads_only_the_catalog(dashboard: Json) -> None:
    """Against the hand-written catalog (independent of proxy.metrics)."""
    assert unknown_names(all_exprs(dashboard), CATALOG_SERIES | recorded_names()) == {}


def test_dashboard_reads_only_registered_metrics(dashboard: Json) -> None:
    known = registry_series()
    assert "vetcache_requests_total" in known
    assert unknown_names(all_exprs(dashboard), known | recorded_names()) == {}


def test_catalog_is_registered() -> None:
    assert CATALOG_SERIES - registry_series() == set()
