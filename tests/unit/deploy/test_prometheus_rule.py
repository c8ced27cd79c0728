"""The monitoring component's PrometheusRule carries exactly the groups of
deploy/prometheus/rules/*.yml (scripts/sync-prometheusrule.py writes it; its ``--check`` is
what the test runs), it is in the rendered stack, and the ServiceMonitors keep the sample
Prometheus config's job names."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.deploy.k8s_render import by_kind, matches
from tests.unit.deploy.paths import (
    PROMETHEUS_DIR,
    PROMETHEUS_RULE,
    ROOT,
    SYNC_PROMETHEUS_RULE,
    Json,
    load,
    rule_groups,
)
from tests.unit.deploy.prometheus_rule import (
    prometheus_rule_manifest,
    prometheus_rule_stale,
    sync_prometheus_rule,
)


def test_prometheus_rule_carries_the_rule_files_groups() -> None:
    committed = load(PROMETHEUS_RULE)
    assert committed["spec"]["groups"] == rule_groups(), (
        "deploy/k8s/monitoring/prometheusrule.yaml is stale: "
        "run `python scripts/sync-prometheusrule.py`"
    )
    assert committed == prometheus_rule_manifest()
    names = [group["name"] for group in committed["spec"]["groups"]]
    assert len(names) == len(set(names))
    assert prometheus_rule_stale() is None, "byte for byte what the script writes"


def test_prometheus_rule_is_in_the_rendered_stack(stack: list[Json]) -> None:
    (rule,) = by_kind(stack, "PrometheusRule")
    assert rule["spec"]["groups"] == rule_groups()


def test_service_monitors_keep_the_sample_configs_job_names(stack: list[Json]) -> None:
    """Without a jobLabel the operator names the job after the Service: the same job names as
    deploy/prometheus/prometheus.yml, so queries and dashboards work with either."""
    sample = {job["job_name"] for job in load(PROMETHEUS_DIR / "prometheus.yml")["scrape_configs"]}
    monitors = by_kind(stack, "ServiceMonitor")
    assert all("jobLabel" not in m["spec"] for m in monitors)
    jobs = {
        service["metadata"]["name"]
        for monitor in monitors
        for service in by_kind(stack, "Service")
        if matches(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    }
    assert jobs == sample


def _copy_rules_and_rule(root: Path) -> Path:
    """The rule files and the committed PrometheusRule under ``root``; the rules file path."""
    for source in (PROMETHEUS_DIR / "rules", PROMETHEUS_RULE.parent):
        shutil.copytree(source, root / source.relative_to(ROOT))
    return root / (PROMETHEUS_DIR / "rules" / "vetcache.rules.yml").relative_to(ROOT)


def test_the_sync_script_notices_a_changed_rule_file_and_rewrites_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = _copy_rules_and_rule(tmp_path)
    assert sync_prometheus_rule(["--check"], tmp_path) == 0
    rules.write_text(rules.read_text("utf-8").replace("[5m]", "[6m]"), encoding="utf-8")
    capsys.readouterr()
    assert sync_prometheus_rule(["--check"], tmp_path) == 1
    assert "run `python scripts/sync-prometheusrule.py`" in capsys.readouterr().err
    assert prometheus_rule_stale(tmp_path) is not None
    assert sync_prometheus_rule([], tmp_path) == 0
    assert sync_prometheus_rule(["--check"], tmp_path) == 0
    rewritten = load(tmp_path / PROMETHEUS_RULE.relative_to(ROOT))
    assert rewritten == prometheus_rule_manifest(tmp_path)
    assert rewritten != prometheus_rule_manifest()
    assert "[6m]" in str(rewritten["spec"]["groups"])


def test_the_sync_script_runs_as_documented() -> None:
    result = subprocess.run(
        [sys.executable, str(SYNC_PROMETHEUS_RULE), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "up to date" in result.stdout
