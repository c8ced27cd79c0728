"""The dashboard's files, and reading its panels, targets and template variables."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.unit.grafana.promql import variable_expr

ROOT = Path(__file__).resolve().parents[3]
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
