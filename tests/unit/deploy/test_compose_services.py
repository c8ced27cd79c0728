"""What deploy/compose.yaml runs: the services the README promises, the settings the
environment gives load through ``proxy.settings``, every command parses with the real CLI,
the ports are the image's, the inline Prometheus config scrapes the right services and ports
(promtool checks it when installed) and Grafana gets its provisioning."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.unit.deploy.compose import (
    PORT,
    built_from_our_dockerfile,
    compose,
    compose_services,
    has_healthcheck,
    service_environment,
)
from tests.unit.deploy.dockerfile import exposed_ports
from tests.unit.deploy.gateway import clean_environment, parse_cli
from tests.unit.deploy.paths import (
    FAKE_UPSTREAM_PORT,
    GATEWAY_PORT,
    GRAFANA_DATASOURCE,
    GRAFANA_PROVIDER,
    PROMETHEUS_DIR,
    RULES_DIR,
    WORKER_METRICS_PORT,
    Json,
    load,
)


def test_compose_runs_the_services_the_readme_promises() -> None:
    services = compose_services()
    assert set(services) == {
        "redis",
        "gateway",
        "audit-worker",
        "prometheus",
        "grafana",
        "fake-upstream",
    }
    redis = services["redis"]
    assert redis["image"] == "redis/redis-stack-server:7.4.0-v3"
    assert redis["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]
    gateway = services["gateway"]
    assert gateway["deploy"]["replicas"] == 2
    assert built_from_our_dockerfile(gateway)
    for name in ("gateway", "audit-worker"):
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service_environment(services[name])["VETCACHE_REDIS_URL"] == "redis://redis:6379"
        assert service_environment(services[name])["VETCACHE_API_DOCS"] == "false"
    assert services["fake-upstream"]["profiles"] == ["fake"]
    assert all(not s.get("profiles") for n, s in services.items() if n != "fake-upstream")
    for name in ("audit-worker", "fake-upstream"):
        assert built_from_our_dockerfile(services[name])
        assert services[name]["image"] == gateway["image"], "one image, built once"
        assert has_healthcheck(services[name]) and "healthcheck" in services[name], (
            f"{name} serves no /healthz on 8000: it needs its own check, not the image's"
        )


def test_compose_commands_are_valid_vetcache_command_lines() -> None:
    services = compose_services()
    parsed = {
        name: parse_cli(service["command"])
        for name, service in services.items()
        if built_from_our_dockerfile(service)
    }
    assert parsed["gateway"].command == "serve"
    assert parsed["audit-worker"].command == "audit-worker"
    assert parsed["audit-worker"].metrics_port == WORKER_METRICS_PORT
    assert parsed["fake-upstream"].command == "fake-upstream"
    assert parsed["fake-upstream"].host == "0.0.0.0"
    assert parsed["fake-upstream"].port == FAKE_UPSTREAM_PORT


def test_compose_ports_are_the_ones_the_image_exposes() -> None:
    services = compose_services()
    gateway = services["gateway"]
    containers = {int(PORT.match(p).group("container")) for p in gateway["ports"]}  # type: ignore[union-attr]
    assert containers == {GATEWAY_PORT}
    assert service_environment(gateway)["VETCACHE_PORT"] == str(GATEWAY_PORT)
    assert all(
        str(p).startswith("127.0.0.1:") for s in services.values() for p in s.get("ports") or []
    )
    assert {int(p) for p in services["audit-worker"]["expose"]} == {WORKER_METRICS_PORT}
    assert {GATEWAY_PORT, WORKER_METRICS_PORT} <= exposed_ports()


@pytest.mark.parametrize("service", ["gateway", "audit-worker"])
def test_compose_environment_is_a_valid_vetcache_configuration(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from proxy.settings import load_settings

    clean_environment(monkeypatch)
    for name, value in service_environment(compose_services()[service]).items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.redis_url == "redis://redis:6379"
    assert settings.host == "0.0.0.0"
    assert settings.auth.enabled and len(settings.auth.api_keys) == 1
    if service == "gateway":
        assert settings.aliases == ("fake-gpt", "fake-embed")
        bases = {str(route.api_base) for route in settings.model_list}
        assert bases == {f"http://fake-upstream:{FAKE_UPSTREAM_PORT}/v1"}


def _prometheus_compose_config() -> Json:
    content = compose()["configs"]["prometheus-config"]["content"]
    data = yaml.safe_load(content)
    assert isinstance(data, dict)
    return data


def test_compose_prometheus_scrapes_every_replica_and_loads_the_rules() -> None:
    services = compose_services()
    prometheus = services["prometheus"]
    config = _prometheus_compose_config()
    target = prometheus["configs"][0]["target"]
    assert f"--config.file={target}" in prometheus["command"]
    rules_mount = next(v for v in prometheus["volumes"] if v.startswith("./prometheus/rules:"))
    (rule_glob,) = config["rule_files"]
    assert Path(rule_glob).parent == Path(rules_mount.split(":")[1])
    assert sorted(RULES_DIR.glob(Path(rule_glob).name)) == sorted(RULES_DIR.glob("*.yml"))
    sample = load(PROMETHEUS_DIR / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {job["job_name"] for job in sample["scrape_configs"]}
    expected = {
        "vetcache-gateway": ("gateway", GATEWAY_PORT),
        "vetcache-audit-worker": ("audit-worker", WORKER_METRICS_PORT),
    }
    for job_name, (service, port) in expected.items():
        (discovery,) = jobs[job_name]["dns_sd_configs"]
        assert discovery["names"] == [service] and discovery["port"] == port
        assert service in services
    assert config["global"] == sample["global"]


def test_compose_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI", "") not in ("", "0", "false"):
            pytest.fail("promtool is not on PATH (CI must install the prometheus package)")
        pytest.skip("promtool is not on PATH (apt-get install prometheus)")
    config = _prometheus_compose_config()
    config["rule_files"] = [str(RULES_DIR / "*.yml")]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = subprocess.run(
        [promtool, "check", "config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_grafana_mounts_the_provisioning_and_dashboards() -> None:
    services = compose_services()
    grafana = services["grafana"]
    mounts = dict(tuple(v.split(":")[:2]) for v in grafana["volumes"] if v.startswith("./"))
    provider_path = load(GRAFANA_PROVIDER)["providers"][0]["options"]["path"]
    assert mounts == {
        "./grafana/provisioning": "/etc/grafana/provisioning",
        "./grafana/dashboards": provider_path,
    }
    url = load(GRAFANA_DATASOURCE)["datasources"][0]["url"]
    host, port = re.match(r"http://([\w-]+):(\d+)", url).groups()  # type: ignore[union-attr]
    assert host in services
    assert any(p.endswith(f":{port}") for p in services[host]["ports"])
