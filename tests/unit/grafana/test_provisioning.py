"""Grafana's provisioning files: the Prometheus data source the dashboard defaults to, and
the dashboard provider's path, documented in deploy/grafana/README.md."""

from __future__ import annotations

import yaml

from tests.unit.grafana.dashboard import (
    DASHBOARD,
    DASHBOARD_PROVIDER,
    DATASOURCE,
    GRAFANA,
    README,
    Json,
    variables,
)


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
