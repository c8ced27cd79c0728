"""With promtool installed, every dashboard query returns data on synthetic series of two
replicas, aggregated across them; a query that returns nothing, or one series per replica,
fails."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.unit.grafana.catalog import CATALOG_SERIES
from tests.unit.grafana.dashboard import Json, all_panels, variable_query, variables
from tests.unit.grafana.promql import variable_expr
from tests.unit.grafana.synthetic import run_promtool, synthetic_series

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
