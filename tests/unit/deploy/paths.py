"""Where the deployment files are, the ports and names they share, and reading their YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = DEPLOY / "compose.yaml"
K8S = DEPLOY / "k8s"
MONITORING = K8S / "monitoring"
PROMETHEUS_RULE = MONITORING / "prometheusrule.yaml"
PROMETHEUS_DIR = DEPLOY / "prometheus"
RULES_DIR = PROMETHEUS_DIR / "rules"
GRAFANA_PROVIDER = DEPLOY / "grafana" / "provisioning" / "dashboards" / "vetcache.yml"
GRAFANA_DATASOURCE = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
INSTALL_SH = ROOT / "scripts" / "install.sh"
SYNC_PROMETHEUS_RULE = ROOT / "scripts" / "sync-prometheusrule.py"
MAKEFILE = ROOT / "Makefile"
PYPROJECT = ROOT / "pyproject.toml"

Json = dict[str, Any]

NAMESPACE = "vetcache"
GATEWAY_PORT = 8000
WORKER_METRICS_PORT = 9102
FAKE_UPSTREAM_PORT = 8001
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def load(path: Path) -> Json:
    """A YAML file whose document is a mapping."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path}: not a mapping"
    return data


def rule_groups() -> list[Json]:
    """The groups of deploy/prometheus/rules/*.yml, in file order."""
    return [group for path in sorted(RULES_DIR.glob("*.yml")) for group in load(path)["groups"]]
