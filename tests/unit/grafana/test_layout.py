"""The dashboard's identity, template variables and layout: unique panel ids, every panel on
the templated Prometheus source, panels on the grid without overlapping, range selectors
that follow the dashboard, namespaced metrics filtered by the namespace variable, and the
FP rate drawn in its confidence band."""

from __future__ import annotations

import itertools
import re

from tests.unit.grafana.catalog import NAMESPACED_SERIES
from tests.unit.grafana.dashboard import (
    GRID_WIDTH,
    NAMESPACE_QUERY,
    PANEL_DATASOURCE,
    Json,
    all_panels,
    panel_exprs,
    variable_query,
    variables,
)
from tests.unit.grafana.promql import RANGES, STRINGS, metric_names


def test_dashboard_identity(dashboard: Json) -> None:
    assert dashboard["uid"] == "vetcache"
    assert dashboard["title"] == "vetcache"
    assert dashboard["schemaVersion"] == 39


def test_template_variables(dashboard: Json) -> None:
    found = variables(dashboard)
    datasource = found["datasource"]
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")
    namespace = found["namespace"]
    assert namespace["type"] == "query"
    assert variable_query(namespace) == NAMESPACE_QUERY
    assert namespace["multi"] is True
    assert namespace["includeAll"] is True
    assert namespace["datasource"] == PANEL_DATASOURCE


def test_panel_ids_are_unique(dashboard: Json) -> None:
    ids = [panel["id"] for panel in all_panels(dashboard["panels"])]
    assert len(ids) == len(set(ids)), sorted(ids)


def test_every_panel_queries_prometheus(dashboard: Json) -> None:
    for panel in all_panels(dashboard["panels"]):
        title = panel["title"]
        assert panel.get("datasource") == PANEL_DATASOURCE, title
        targets = panel.get("targets") or []
        assert targets, title
        for target in targets:
            assert str(target.get("expr", "")).strip(), (title, target)
            assert target.get("datasource", PANEL_DATASOURCE) == PANEL_DATASOURCE, title
        assert len({target["refId"] for target in targets}) == len(targets), title


def overlap(a: dict[str, int], b: dict[str, int]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


def test_panels_fit_the_grid_without_overlapping(dashboard: Json) -> None:
    grid = [(panel["title"], panel["gridPos"]) for panel in all_panels(dashboard["panels"])]
    for title, pos in grid:
        assert all(isinstance(pos[key], int) for key in "xywh"), title
        assert pos["x"] >= 0 and pos["y"] >= 0 and pos["w"] > 0 and pos["h"] > 0, title
        assert pos["x"] + pos["w"] <= GRID_WIDTH, title
    for (a, pos_a), (b, pos_b) in itertools.combinations(grid, 2):
        assert not overlap(pos_a, pos_b), (a, b)


def test_range_selectors_follow_the_dashboard(dashboard: Json) -> None:
    """No hard-coded windows: ``$__rate_interval`` for rates, ``$__range`` for totals."""
    for where, expr in panel_exprs(dashboard).items():
        windows = set(RANGES.findall(STRINGS.sub(" ", expr)))
        assert windows <= {"[$__rate_interval]", "[$__range]"}, (where, windows)


_SELECTOR = re.compile(r"(?<![\w:])(vetcache_\w+)\s*(\{[^{}]*\})?")


def test_namespaced_metrics_follow_the_namespace_variable(dashboard: Json) -> None:
    for where, expr in panel_exprs(dashboard).items():
        for name, matchers in _SELECTOR.findall(expr):
            if name in NAMESPACED_SERIES:
                assert 'namespace=~"$namespace' in matchers, (where, name)


def test_false_positive_rate_is_drawn_in_its_band(dashboard: Json) -> None:
    """One panel draws the FP rate with ``_upper`` filled down to ``_lower``; it repeats per
    namespace, so each of its legends names one series."""
    banded = []
    for panel in all_panels(dashboard["panels"]):
        legends = {
            target["legendFormat"]: metric_names(target["expr"]) for target in panel["targets"]
        }
        for override in panel["fieldConfig"]["overrides"]:
            fills = [p["value"] for p in override["properties"] if p["id"] == "custom.fillBelowTo"]
            if not fills:
                continue
            upper = override["matcher"]["options"]
            assert override["matcher"]["id"] == "byName", panel["title"]
            assert legends[upper] == {"vetcache_false_positive_rate_upper"}, panel["title"]
            assert legends[fills[0]] == {"vetcache_false_positive_rate_lower"}, panel["title"]
            read = set().union(*legends.values())
            assert {"vetcache_false_positive_rate", "vetcache_audit_verdicts_total"} <= read
            assert panel.get("repeat") == "namespace", panel["title"]
            banded.append(panel["title"])
    assert banded


def test_false_positive_rate_by_cohort_and_of_shadow_mode_have_panels(dashboard: Json) -> None:
    """The cohort view: one line per (dimension, cohort), so a spike in one language or band
    shows apart from the overall rate; and the rate shadow mode would have served."""
    reads = {
        panel["title"]: [target["expr"] for target in panel["targets"]]
        for panel in all_panels(dashboard["panels"])
    }
    cohort = [
        expr
        for exprs in reads.values()
        for expr in exprs
        if metric_names(expr) == {"vetcache_cohort_false_positive_rate"}
    ]
    assert cohort and all("by (dimension, cohort)" in expr for expr in cohort), cohort
    assert any(
        metric_names(expr) == {"vetcache_shadow_false_positive_rate"}
        for exprs in reads.values()
        for expr in exprs
    ), reads
