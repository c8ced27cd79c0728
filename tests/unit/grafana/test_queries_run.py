"""With promtool installed, every dashboard query returns data on synthetic series of two
replicas, aggregated across them; a query that returns nothing, or one series per replica,
fails. The hit ratios come out right: a fail_open request is a lookup that did not hit."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.unit.grafana.catalog import CATALOG_SERIES
from tests.unit.grafana.dashboard import Json, all_panels, variable_query, variables
from tests.unit.grafana.promql import variable_expr
from tests.unit.grafana.synthetic import (
    STEPS,
    run_promql_tests,
    run_promtool,
    series,
    synthetic_series,
)

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool")


def test_synthetic_series_are_catalog_series() -> None:
    names = {re.sub(r"\{.*", "", s["series"]) for s in synthetic_series()}
    assert names == CATALOG_SERIES


@needs_promtool
def test_every_query_returns_aggregated_data(dashboard: Json, tmp_path: Path) -> None:
    exprs = {
        f"p{panel['id']}_{target['refId']}": target["expr"]
        for panel in all_panels(dashboard["panels"])
        for target in panel["targets"]
    }
    # The variable lists label values: it needs series with the label, not an aggregate.
    selector = variable_expr(variable_query(variables(dashboard)["namespace"]))
    exprs["namespace_variable"] = f"group by (namespace) ({selector})"
    result = run_promtool(exprs, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_an_empty_or_unaggregated_query_fails(tmp_path: Path) -> None:
    exprs = {
        "wrong_label": 'sum(rate(vetcache_requests_total{stage="embed"}[$__rate_interval]))',
        "per_replica": "rate(vetcache_requests_total[$__rate_interval])",
        "summed_by_outcome": "sum by (outcome) (rate(vetcache_requests_total[$__rate_interval]))",
    }
    result = run_promtool(exprs, tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "wrong_label" in output
    assert "per_replica" in output
    assert "summed_by_outcome" not in output


LOOKUP_RATES = {("a", "hit"): 1, ("a", "miss"): 1, ("a", "fail_open"): 2, ("a", "bypass"): 4}
LOOKUP_RATES |= {("a", "error"): 4, ("b", "fail_open"): 1}
"""Requests a second by namespace and outcome: namespace b's cache is down (it fails open)."""
HIT_RATIOS = {
    ("Hit ratio (range)", "A"): {"{}": 0.2},
    ("Hit ratio", "A"): {"{}": 0.2},
    ("Hit ratio", "B"): {'{namespace="a"}': 0.25, '{namespace="b"}': 0.0},
}
"""Hits / lookups (hit, miss, fail_open) per target: 1 of 5 a second in all, 1 of 4 in a,
and 0 (not absent) in b, where every lookup failed open."""


@needs_promtool
def test_hit_ratios_count_fail_open_as_a_lookup_that_did_not_hit(
    dashboard: Json, tmp_path: Path
) -> None:
    targets = {
        (panel["title"], target["refId"]): target["expr"]
        for panel in all_panels(dashboard["panels"])
        for target in panel["targets"]
        if re.search(r'vetcache_requests_total\{[^}]*outcome="hit"', target["expr"])
    }
    assert set(targets) == set(HIT_RATIOS)
    input_series = [
        series(
            "vetcache_requests_total",
            {"namespace": namespace, "model": "m", "outcome": outcome, "instance": "gw-1"},
            f"0+{15 * per_second}x{STEPS}",
        )
        for (namespace, outcome), per_second in LOOKUP_RATES.items()
    ]
    cases = [
        {
            "expr": f"round(1e6 * ({expr})) / 1e6",
            "exp_samples": [
                {"labels": labels, "value": value} for labels, value in HIT_RATIOS[where].items()
            ],
        }
        for where, expr in targets.items()
    ]
    result = run_promql_tests(input_series, cases, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
