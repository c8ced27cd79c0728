"""scripts/sync-prometheusrule.py, loaded by path (scripts/ is not a package), behind typed
functions: the tests check the committed PrometheusRule with the code that writes it."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from types import ModuleType

from tests.unit.deploy.paths import ROOT, SYNC_PROMETHEUS_RULE, Json


@functools.cache
def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sync_prometheusrule", SYNC_PROMETHEUS_RULE)
    assert spec is not None and spec.loader is not None, SYNC_PROMETHEUS_RULE
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def prometheus_rule_manifest(root: Path = ROOT) -> Json:
    """The PrometheusRule object the script makes of the rule files under ``root``."""
    manifest: Json = _script().manifest(root)
    return manifest


def prometheus_rule_stale(root: Path = ROOT) -> str | None:
    """Why the PrometheusRule file under ``root`` is stale (what to run), or None."""
    problem: str | None = _script().stale(root)
    return problem


def sync_prometheus_rule(argv: list[str], root: Path) -> int:
    """The script's ``main``: its exit status."""
    status: int = _script().main(argv, root)
    return status
