"""The Kubernetes workloads: probes on the routes proxy/routes/health.py serves, the
gateway's and audit worker's shape (replicas, resources, HPA, PDB, Service ports), pods that
run as the image's user without privileges, the settings file mounted where
VETCACHE_CONFIG_FILE points and loaded through ``proxy.settings``, a placeholder Secret that
stops the pods, and no image without a pinned tag."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.unit.deploy.compose import compose_services
from tests.unit.deploy.dockerfile import exposed_ports, one, stage
from tests.unit.deploy.gateway import clean_environment, parse_cli, routes
from tests.unit.deploy.k8s_render import by_kind, named, pod_containers, pod_spec
from tests.unit.deploy.paths import GATEWAY_PORT, WORKER_METRICS_PORT, Json


def _gateway_container(objects: list[Json]) -> Json:
    (container,) = pod_containers(named(objects, "Deployment", "vetcache-gateway"))
    return container


def test_gateway_probes_use_the_health_routes(stack: list[Json]) -> None:
    container = _gateway_container(stack)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": GATEWAY_PORT}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in ("http", GATEWAY_PORT)
    assert routes() >= {"/healthz", "/readyz", "/metrics"}


def _quantity(value: str | int) -> float:
    text = str(value)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text.removesuffix(suffix)) * factor
    return float(text)


def test_gateway_shape(stack: list[Json]) -> None:
    deployment = named(stack, "Deployment", "vetcache-gateway")
    assert deployment["spec"]["replicas"] == 2
    container = _gateway_container(stack)
    assert parse_cli(container["args"]).command == "serve"
    resources = container["resources"]
    assert _quantity(resources["requests"]["cpu"]) >= 1
    assert _quantity(resources["requests"]["memory"]) >= 1.5 * 2**30, "it loads the model"
    assert _quantity(resources["limits"]["memory"]) >= _quantity(resources["requests"]["memory"])
    hpa = named(stack, "HorizontalPodAutoscaler", "vetcache-gateway")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 10)
    (metric,) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["averageUtilization"] == 70
    assert named(stack, "PodDisruptionBudget", "vetcache-gateway")["spec"]["minAvailable"] == 1
    service = named(stack, "Service", "vetcache-gateway")
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [("http", GATEWAY_PORT)]


def test_audit_worker_shape(stack: list[Json]) -> None:
    (container,) = pod_containers(named(stack, "Deployment", "vetcache-audit-worker"))
    args = parse_cli(container["args"])
    assert args.command == "audit-worker" and args.metrics_port == WORKER_METRICS_PORT
    assert [p["containerPort"] for p in container["ports"]] == [WORKER_METRICS_PORT]
    service = named(stack, "Service", "vetcache-audit-worker")
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [
        ("metrics", WORKER_METRICS_PORT)
    ]


def test_pods_run_as_the_images_user_without_privileges(stack: list[Json]) -> None:
    uid = int(one(stage("runtime"), "USER").args.split(":")[0])
    for deployment in by_kind(stack, "Deployment"):
        pod = pod_spec(deployment)["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == uid
        assert pod["seccompProfile"]["type"] == "RuntimeDefault"
        for container in pod_containers(deployment):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert {p["containerPort"] for p in container["ports"]} <= exposed_ports()
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            if security.get("readOnlyRootFilesystem"):
                assert "/tmp" in mounts, "a read-only root needs a writable /tmp"


def test_the_config_is_mounted_where_vetcache_config_file_points(stack: list[Json]) -> None:
    for deployment in by_kind(stack, "Deployment"):
        (container,) = pod_containers(deployment)
        env = {e["name"]: e.get("value") for e in container["env"]}
        volumes = {v["name"]: v for v in pod_spec(deployment)["volumes"]}
        mount = next(m for m in container["volumeMounts"] if "configMap" in volumes[m["name"]])
        config_map = named(stack, "ConfigMap", volumes[mount["name"]]["configMap"]["name"])
        config_file = Path(env["VETCACHE_CONFIG_FILE"])
        assert config_file.parent == Path(mount["mountPath"])
        assert config_file.name in config_map["data"]
        assert env["VETCACHE_HOST"] == "0.0.0.0"


def _secret_env(stack: list[Json]) -> dict[str, str]:
    data: dict[str, str] = named(stack, "Secret", "vetcache-secrets")["stringData"]
    return data


def _write_config(stack: list[Json], tmp_path: Path) -> Path:
    (config_map,) = by_kind(stack, "ConfigMap")
    path = tmp_path / "vetcache.yaml"
    path.write_text(config_map["data"]["vetcache.yaml"], encoding="utf-8")
    return path


def test_the_secret_is_a_placeholder_that_stops_the_pods(
    stack: list[Json], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from proxy.errors import ConfigError
    from proxy.settings import load_settings

    secret = _secret_env(stack)
    assert secret and all("REPLACE_ME" in value for value in secret.values())
    clean_environment(monkeypatch)
    for name, value in secret.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        load_settings(config_file=_write_config(stack, tmp_path))
    assert "admin_key_sha256" in str(error.value) and "auth.api_keys" in str(error.value)


def test_the_configmap_with_real_secrets_is_a_valid_configuration(
    stack: list[Json], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from proxy.settings import load_settings

    clean_environment(monkeypatch)
    replaced = {
        "VETCACHE_ADMIN_KEY_SHA256": hashlib.sha256(b"admin").hexdigest(),
        "VETCACHE_AUTH__API_KEYS": json.dumps(
            [{"tenant": "t", "key_sha256": hashlib.sha256(b"client").hexdigest()}]
        ),
        "OPENAI_API_KEY": "sk-test",
    }
    assert set(replaced) == set(_secret_env(stack))
    for name, value in replaced.items():
        monkeypatch.setenv(name, value)
    (deployment,) = [d for d in by_kind(stack, "Deployment") if "gateway" in d["metadata"]["name"]]
    for item in pod_containers(deployment)[0]["env"]:
        if item["name"] not in ("VETCACHE_CONFIG_FILE", "HOME"):
            monkeypatch.setenv(item["name"], item["value"])
    settings = load_settings(config_file=_write_config(stack, tmp_path))
    assert settings.redis_url and settings.redis_url.startswith("redis://")
    assert settings.auth.enabled and settings.aliases
    assert settings.cache.embedding_model == "bundled:all-MiniLM-L6-v2"
    assert settings.host == "0.0.0.0" and settings.workers == 1
    assert not settings.api_docs  # /docs and /openapi.json are not served without a key


def test_no_latest_tags_anywhere(stack: list[Json]) -> None:
    images = [c["image"] for o in stack for c in pod_containers(o)]
    images += [s["image"] for s in compose_services().values() if "image" in s]
    assert images and not [i for i in images if i.endswith(":latest") or ":" not in i]
