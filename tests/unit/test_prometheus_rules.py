"""The Prometheus rules in deploy/prometheus: promtool checks them and runs their unit tests,
and every alert has a test case that fires it and one that keeps it quiet.

Without promtool on PATH the promtool tests skip, unless ``CI`` is set (CI installs it:
Debian package ``prometheus``); then they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES_DIR = PROMETHEUS_DIR / "rules"
TESTS_DIR = PROMETHEUS_DIR / "tests"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
TEST_FILES = sorted(TESTS_DIR.glob("*.yml"))
README = PROMETHEUS_DIR / "README.md"

RECORD_NAME = re.compile(r"^[a-z_]*:[a-z0-9_]+:[a-z0-9_]+$")
"""level:metric:operation (the level is empty for rules aggregated over every label)."""


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI", "") not in ("", "0", "false"):
            pytest.fail("promtool is not on PATH (CI must install the prometheus package)")
        pytest.skip("promtool is not on PATH (apt-get install prometheus)")
    return path


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # fixed argv, no shell
        args, cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=300, check=False
    )


def _assert_ok(result: subprocess.CompletedProcess[str]) -> None:
    output = f"$ {' '.join(result.args)}\n{result.stdout}\n{result.stderr}"
    print(output)
    assert result.returncode == 0, output


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    return data


def _rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for path in RULE_FILES:
        for group in _load(path)["groups"]:
            rules.extend(group["rules"])
    return rules


def _alert_rules() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def _alert_cases() -> list[dict[str, Any]]:
    """Every alert_rule_test entry of every promtool test file."""
    return [
        case
        for path in TEST_FILES
        for test in _load(path)["tests"]
        for case in test.get("alert_rule_test") or []
    ]


def test_the_files_exist() -> None:
    assert [p.name for p in RULE_FILES] == ["vetcache.alerts.yml", "vetcache.rules.yml"]
    assert [p.name for p in TEST_FILES] == ["vetcache.alerts.test.yml", "vetcache.rules.test.yml"]


def test_promtool_check_rules() -> None:
    promtool = _promtool()
    result = _run([promtool, "check", "rules", "--lint-fatal", *map(str, RULE_FILES)])
    _assert_ok(result)
    assert result.stdout.count("SUCCESS") == len(RULE_FILES)


def test_promtool_check_config() -> None:
    """The sample config is valid and loads the rule files."""
    result = _run([_promtool(), "check", "config", "prometheus.yml"])
    _assert_ok(result)
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in result.stdout


def test_promtool_test_rules() -> None:
    result = _run([_promtool(), "test", "rules", *map(str, TEST_FILES)])
    _assert_ok(result)
    assert "FAILED" not in result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(TEST_FILES)


def test_promtool_test_rules_fails_on_a_wrong_expectation(tmp_path: Path) -> None:
    """promtool's exit status really reports a failing alert expectation: one firing case
    of the real test file, rewritten to expect silence."""
    real = _load(TESTS_DIR / "vetcache.alerts.test.yml")
    test = next(t for t in real["tests"] if any(c["exp_alerts"] for c in t["alert_rule_test"]))
    case = next(c for c in test["alert_rule_test"] if c["exp_alerts"])
    broken = {
        **real,
        "rule_files": [str(RULES_DIR / Path(f).name) for f in real["rule_files"]],
        "tests": [{**test, "alert_rule_test": [{**case, "exp_alerts": []}]}],
    }
    path = tmp_path / "broken.test.yml"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    result = _run([_promtool(), "test", "rules", str(path)])
    assert result.returncode != 0, result.stdout
    assert "FAILED" in result.stdout + result.stderr
    assert case["alertname"] in result.stdout + result.stderr


@pytest.mark.parametrize(("ci", "outcome"), [(None, "skip"), ("", "skip"), ("true", "fail")])
def test_a_missing_promtool_skips_except_on_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ci: str | None, outcome: str
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no promtool
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    expected = pytest.skip.Exception if outcome == "skip" else pytest.fail.Exception
    with pytest.raises(expected, match="promtool is not on PATH"):
        _promtool()


def test_the_test_files_load_every_rule_file_in_dependency_order() -> None:
    groups = [g["name"] for path in RULE_FILES for g in _load(path)["groups"]]
    alert_groups = [g["name"] for g in _load(RULES_DIR / "vetcache.alerts.yml")["groups"]]
    for path in TEST_FILES:
        test_file = _load(path)
        loaded = {(TESTS_DIR / f).resolve() for f in test_file["rule_files"]}
        if path.name == "vetcache.alerts.test.yml":
            assert loaded == {p.resolve() for p in RULE_FILES}
            # Recording groups before alert groups, or promtool picks a random order.
            order = test_file["group_eval_order"]
            assert sorted(order) == sorted(groups)
            assert order[-len(alert_groups) :] == alert_groups
        else:
            assert loaded == {(RULES_DIR / "vetcache.rules.yml").resolve()}


def test_recording_rules_are_named_level_metric_operation_and_tested() -> None:
    records = [rule["record"] for rule in _rules() if "record" in rule]
    assert len(records) == len(set(records))
    exprs = [
        case["expr"]
        for test in _load(TESTS_DIR / "vetcache.rules.test.yml")["tests"]
        for case in test.get("promql_expr_test") or []
    ]
    untested = [
        r
        for r in records
        if not any(re.search(rf"(?<![\w:]){re.escape(r)}(?![\w:])", e) for e in exprs)
    ]
    assert [r for r in records if not RECORD_NAME.match(r)] == []
    assert untested == []


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    alerts = _alert_rules()
    names = {rule["alert"] for rule in alerts}
    assert names == {
        "VetcacheFalsePositiveRateOverBudget",
        "VetcacheFalsePositiveSpike",
        "VetcacheCohortFalsePositiveRateHigh",
        "VetcacheHitRatioCollapse",
        "VetcacheLatencyP99OverBudget",
        "VetcacheAuditBacklog",
        "VetcacheCacheErrors",
        "VetcacheJudgeErrors",
    }
    cases = _alert_cases()
    # A case naming an alert that does not exist would pass vacuously when it expects none.
    unknown = {case["alertname"] for case in cases} - names
    assert not unknown, f"test cases for alerts that do not exist: {unknown}"
    for name in sorted(names):
        quiet = [c for c in cases if c["alertname"] == name and not c.get("exp_alerts")]
        assert quiet, f"{name} has no quiet case"
    # Each rule (an alert may have several, told apart by labels) fires in some case, and
    # the case checks its labels and every annotation.
    for rule in alerts:
        firing = [
            alert
            for case in cases
            if case["alertname"] == rule["alert"]
            for alert in case.get("exp_alerts") or []
            if rule["labels"].items() <= alert.get("exp_labels", {}).items()
        ]
        assert firing, f"{rule['alert']} {rule['labels']} never fires in a test"
        for alert in firing:
            assert set(alert["exp_annotations"]) == set(rule["annotations"]), rule["alert"]


def test_alerts_carry_severity_annotations_and_a_runbook_in_the_readme() -> None:
    readme = README.read_text(encoding="utf-8")
    for rule in _alert_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook"} <= set(annotations), name
        for key in ("summary", "description"):
            assert "$value" in annotations[key], f"{name} {key} does not show the value"
        runbook = annotations["runbook"]
        assert runbook.startswith("https://github.com/vetcache/vetcache/"), name
        anchor = runbook.partition("#")[2]
        assert anchor == name.lower(), name
        assert f'<a id="{anchor}"></a>`{name}`' in readme, f"no README row for {name}"
