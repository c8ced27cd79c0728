"""Running dashboard queries with ``promtool test rules`` against synthetic series: every
catalog family on two replicas, counters and histograms growing, gauges holding."""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path

import yaml

from tests.unit.grafana.catalog import CATALOG
from tests.unit.grafana.dashboard import Json

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
    "vetcache_cohort_false_positive_rate": 0.04,
    "vetcache_cohort_false_positive_rate_upper": 0.09,
    "vetcache_cohort_false_positive_labelled": 60.0,
    "vetcache_shadow_false_positive_rate": 0.05,
    "vetcache_shadow_false_positive_labelled": 40.0,
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
    return _promtool_test(test, tmp_path)


def run_promql_tests(
    input_series: list[Json], cases: list[Json], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """promtool's ``promql_expr_test`` cases (``expr`` as Grafana sends it, ``exp_samples``)
    at 10m, over ``input_series`` sampled every 15 s."""
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": []}))
    test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "15s",
        "tests": [
            {
                "interval": "15s",
                "input_series": input_series,
                "promql_expr_test": [
                    {**case, "expr": as_promql(case["expr"]), "eval_time": "10m"} for case in cases
                ],
            }
        ],
    }
    return _promtool_test(test, tmp_path)


def _promtool_test(test: Json, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test))
    return subprocess.run(
        ["promtool", "test", "rules", "test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
