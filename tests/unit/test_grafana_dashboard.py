"""The Grafana dashboard (deploy/grafana/dashboards/vetcache.json) and its provisioning files:
layout, template variables, and every metric name its PromQL reads exists: in the series
``proxy.metrics.Metrics`` registers, or as a recording rule in deploy/prometheus/rules/.
With promtool installed, every query also runs against synthetic series of two replicas and
must return data, aggregated across them."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml
from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "vetcache.json"
DASHBOARD_PROVIDER = GRAFANA / "provisioning" / "dashboards" / "vetcache.yml"
DATASOURCE = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
README = GRAFANA / "README.md"
RULES = ROOT / "deploy" / "prometheus" / "rules"

Json = dict[str, Any]
PANEL_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
NAMESPACE_QUERY = "label_values(vetcache_requests_total, namespace)"
GRID_WIDTH = 24


# --- metric-name extraction ---------------------------------------------------------------

PROMQL_WORDS = frozenset(
    """
    sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk
    limit_ratio
    and or unless bool on ignoring group_left group_right by without offset atan2 start end
    inf nan
    abs absent absent_over_time ceil changes clamp clamp_max clamp_min day_of_month
    day_of_week day_of_year days_in_month delta deriv exp floor histogram_avg histogram_count
    histogram_fraction histogram_quantile histogram_stddev histogram_stdvar histogram_sum
    holt_winters double_exponential_smoothing hour idelta increase irate label_join
    label_replace ln log2 log10 minute month predict_linear rate resets round scalar sgn sort
    sort_desc sort_by_label sort_by_label_desc sqrt time timestamp vector year
    avg_over_time min_over_time max_over_time sum_over_time count_over_time
    quantile_over_time stddev_over_time stdvar_over_time last_over_time present_over_time
    mad_over_time acos acosh asin asinh atan atanh cos cosh sin sinh tan tanh deg rad pi
    label_values label_names metrics query_result
    """.split()
)
"""PromQL functions, aggregations and keywords, and Grafana's variable-query functions."""

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VARIABLES = re.compile(r"\$(?:\{[^}]*\}|\w+)")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_GROUPINGS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_IDENTIFIERS = re.compile(r"(?<![\w.:])[A-Za-z_:][\w:]*")


def metric_names(expr: str) -> set[str]:
    """Metric names an expression reads: what is left once string literals, Grafana
    variables, label matchers, groupings and range selectors are gone, minus the PromQL
    words. Durations and numbers (``5m``, ``1e3``) never start an identifier."""
    for pattern in (_STRINGS, _GRAFANA_VARIABLES, _MATCHERS, _GROUPINGS, _RANGES):
        expr = pattern.sub(" ", expr)
    return {name for name in _IDENTIFIERS.findall(expr) if name.lower() not in PROMQL_WORDS}


_LABEL_VALUES = re.compile(r"^\s*label_values\s*\((?:(?P<selector>.*),)?\s*\w+\s*\)\s*$", re.S)
_QUERY_RESULT = re.compile(r"^\s*query_result\s*\((?P<expr>.*)\)\s*$", re.S)


def variable_expr(query: str) -> str:
    """The PromQL inside a Grafana variable query: ``label_values(<selector>, <label>)`` ->
    the selector (the label is no metric), ``query_result(<expr>)`` -> the expression."""
    if match := _LABEL_VALUES.match(query):
        return match["selector"] or ""
    if match := _QUERY_RESULT.match(query):
        return match["expr"]
    if re.match(r"^\s*(?:label_names|metrics)\s*\(", query):
        return ""
    return query


def unknown_names(exprs: dict[str, str], known: set[str]) -> dict[str, set[str]]:
    """Per expression (by where it is), the metric names it reads that are not ``known``."""
    found = {where: metric_names(expr) - known for where, expr in exprs.items()}
    return {where: names for where, names in found.items() if names}


# --- what exists --------------------------------------------------------------------------


def series_names(family: str, kind: str) -> set[str]:
    """Series a family exports: prometheus-client reports counters without ``_total``."""
    if kind == "counter":
        return {f"{family}_total"}
    if kind == "histogram":
        return {f"{family}_bucket", f"{family}_sum", f"{family}_count"}
    if kind == "summary":
        return {family, f"{family}_sum", f"{family}_count"}
    if kind == "info":
        return {f"{family}_info"}
    return {family}


def registry_series() -> set[str]:
    """Every series name ``Metrics`` registers."""
    from proxy.metrics import Metrics

    registry = CollectorRegistry()
    Metrics(registry)
    return {
        name for family in registry.collect() for name in series_names(family.name, family.type)
    }


def recorded_names() -> set[str]:
    """``record:`` names of the Prometheus recording rules, if any are there."""
    paths = sorted(RULES.glob("*.yml")) + sorted(RULES.glob("*.yaml")) if RULES.is_dir() else []
    names: set[str] = set()
    for path in paths:
        document = yaml.safe_load(path.read_text()) or {}
        for group in document.get("groups") or []:
            names.update(rule["record"] for rule in group.get("rules") or [] if "record" in rule)
    return names


class Family(NamedTuple):
    name: str
    """As ``registry.collect()`` reports it (counters without ``_total``)."""
    kind: str
    labels: dict[str, tuple[str, ...]]
    """Label names, with the values the synthetic series take."""


NAMESPACES = ("a", "b")
KINDS = ("hit", "near_miss")
OUTCOMES = ("hit", "miss", "bypass", "error")
CATALOG = (
    Family(
        "vetcache_requests",
        "counter",
        {"namespace": NAMESPACES, "model": ("m",), "outcome": OUTCOMES},
    ),
    Family("vetcache_request_duration_seconds", "histogram", {"outcome": OUTCOMES}),
    Family(
        "vetcache_stage_duration_seconds",
        "histogram",
        {"stage": ("exact_lookup", "embed", "vector_search", "upstream", "admit", "judge")},
    ),
    Family("vetcache_similarity", "histogram", {"outcome": ("hit", "miss")}),
    Family("vetcache_audit_jobs", "counter", {"namespace": NAMESPACES, "kind": KINDS}),
    Family(
        "vetcache_audit_verdicts",
        "counter",
        {
            "namespace": NAMESPACES,
            "verdict": ("correct", "false_positive", "uncertain", "error"),
            "judge": ("contrast/1", "review", "feedback"),
            "kind": KINDS,
        },
    ),
    Family("vetcache_audit_queue_depth", "gauge", {}),
    Family("vetcache_audit_lag_seconds", "histogram", {}),
    Family("vetcache_false_positive_rate", "gauge", {"namespace": NAMESPACES}),
    Family("vetcache_false_positive_rate_upper", "gauge", {"namespace": NAMESPACES}),
    Family("vetcache_false_positive_rate_lower", "gauge", {"namespace": NAMESPACES}),
    Family("vetcache_false_positive_labelled", "gauge", {"namespace": NAMESPACES}),
    Family("vetcache_threshold", "gauge", {"namespace": (*NAMESPACES, "_default")}),
    Family("vetcache_cache_entries", "gauge", {"namespace": NAMESPACES}),
    Family("vetcache_tokens_saved", "counter", {"namespace": NAMESPACES}),
    Family("vetcache_cost_saved_usd", "counter", {"namespace": NAMESPACES}),
    Family("vetcache_cache_errors", "counter", {"kind": ("store", "embedder", "timeout", "audit")}),
    Family("vetcache_contrast_guard_vetoes", "counter", {"namespace": NAMESPACES}),
)
"""The metric catalog, by hand: names, types and labels the dashboard was written against."""
CATALOG_SERIES = {name for f in CATALOG for name in series_names(f.name, f.kind)}
NAMESPACED_SERIES = {
    name for f in CATALOG if "namespace" in f.labels for name in series_names(f.name, f.kind)
}


# --- the dashboard ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard() -> Json:
    loaded: Json = json.loads(DASHBOARD.read_text())
    return loaded


def all_panels(panels: list[Json]) -> Iterator[Json]:
    """Every panel, including those inside collapsed rows."""
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels") or [])


def panel_exprs(dashboard: Json) -> dict[str, str]:
    """Every target's PromQL, by panel id, title and refId."""
    return {
        f"panel {panel['id']} {panel['title']!r} {target['refId']}": target["expr"]
        for panel in all_panels(dashboard["panels"])
        for target in panel.get("targets") or []
    }


def variables(dashboard: Json) -> dict[str, Json]:
    return {variable["name"]: variable for variable in dashboard["templating"]["list"]}


def variable_query(variable: Json) -> str:
    query = variable.get("query")
    return str(query["query"] if isinstance(query, dict) else query or "")


def all_exprs(dashboard: Json) -> dict[str, str]:
    """Panel exprs and the PromQL of every query variable."""
    exprs = panel_exprs(dashboard)
    for name, variable in variables(dashboard).items():
        if variable["type"] == "query":
            exprs[f"variable {name}"] = variable_expr(variable_query(variable))
    return exprs


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
        windows = set(_RANGES.findall(_STRINGS.sub(" ", expr)))
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


# --- metric names -------------------------------------------------------------------------


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


# --- provisioning -------------------------------------------------------------------------


def test_datasource_provisioning() -> None:
    document = yaml.safe_load(DATASOURCE.read_text())
    assert document["apiVersion"] == 1
    (source,) = document["datasources"]
    assert source["type"] == "prometheus"
    assert source["uid"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"


def test_datasource_variable_defaults_to_the_provisioned_source(dashboard: Json) -> None:
    (source,) = yaml.safe_load(DATASOURCE.read_text())["datasources"]
    assert variables(dashboard)["datasource"]["current"]["value"] == source["uid"]


def test_dashboard_provider_path_is_documented() -> None:
    document = yaml.safe_load(DASHBOARD_PROVIDER.read_text())
    assert document["apiVersion"] == 1
    (provider,) = document["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    assert path.startswith("/")
    readme = README.read_text()
    assert f"`{path}`" in readme
    assert f"deploy/grafana/dashboards:{path}" in readme  # the mount in the example
    assert DASHBOARD.parent == GRAFANA / "dashboards"


# --- the queries run (promtool) -----------------------------------------------------------

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool")

GRAFANA_VALUES = {"$__rate_interval": "1m", "$__range": "10m", "$namespace": "(a|b)"}
REPLICAS = ("gw-1", "gw-2")
LE = ("0.01", "0.1", "0.5", "0.9", "1", "+Inf")
GAUGE_VALUES = {
    "vetcache_false_positive_rate": 0.03,
    "vetcache_false_positive_rate_lower": 0.01,
    "vetcache_false_positive_rate_upper": 0.08,
    "vetcache_false_positive_labelled": 120.0,
    "vetcache_threshold": 0.9,
    "vetcache_cache_entries": 1000.0,
    "vetcache_audit_queue_depth": 3.0,
}
STEPS = 40  # 10 minutes of 15 s samples


def series(name: str, labels: dict[str, str], values: str) -> Json:
    text = ", ".join(f"{key}={json.dumps(value)}" for key, value in sorted(labels.items()))
    return {"series": f"{name}{{{text}}}", "values": values}


def synthetic_series() -> list[Json]:
    """Every catalog family on two replicas: counters and histograms grow, gauges hold."""
    out: list[Json] = []
    for family in CATALOG:
        keys = list(family.labels)
        for replica, values in itertools.product(
            REPLICAS, itertools.product(*family.labels.values())
        ):
            labels = {**dict(zip(keys, values, strict=True)), "instance": replica}
            step = 1 + len(out) % 3
            if family.kind == "counter":
                out.append(series(f"{family.name}_total", labels, f"0+{step}x{STEPS}"))
            elif family.kind == "gauge":
                out.append(series(family.name, labels, f"{GAUGE_VALUES[family.name]}+0x{STEPS}"))
            else:
                for i, le in enumerate(LE, start=1):
                    bucket = {**labels, "le": le}
                    out.append(series(f"{family.name}_bucket", bucket, f"0+{i * step}x{STEPS}"))
                out.append(series(f"{family.name}_count", labels, f"0+{len(LE) * step}x{STEPS}"))
                out.append(series(f"{family.name}_sum", labels, f"0+{step}x{STEPS}"))
    return out


def as_promql(expr: str) -> str:
    """An expr as Prometheus would receive it from Grafana."""
    for variable, value in GRAFANA_VALUES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, expr
    return expr


def run_promtool(exprs: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """One alert per expr that fires when the expr returns nothing, or returns series that
    differ only by ``instance`` (not aggregated across replicas); the unit test expects no
    alert at all."""
    rules = []
    for name, expr in exprs.items():
        q = as_promql(expr)
        check = f"absent({q}) or (count({q}) > count(count without (instance) ({q})))"
        rules.append({"alert": name, "expr": check})
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": rules}]}))
    test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "15s",
        "tests": [
            {
                "interval": "15s",
                "input_series": synthetic_series(),
                "alert_rule_test": [
                    {"alertname": name, "eval_time": "10m", "exp_alerts": []} for name in exprs
                ],
            }
        ],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test))
    return subprocess.run(
        ["promtool", "test", "rules", "test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


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
