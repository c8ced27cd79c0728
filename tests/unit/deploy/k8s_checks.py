"""What a cluster would refuse rendered Kubernetes objects for, or silently get wrong: every
object's identity and namespace, and per kind what it must reference (selectors that match
pod labels, ConfigMaps and Secrets that exist, Service and ServiceMonitor ports that name
container and Service ports, the HPA's target)."""

from __future__ import annotations

from collections.abc import Callable

from tests.unit.deploy.k8s_render import CLUSTER_SCOPED, by_kind, matches, pod_containers, pod_spec
from tests.unit.deploy.paths import NAMESPACE, Json


def _pod_labels(objects: list[Json]) -> list[dict[str, str]]:
    return [d["spec"]["template"]["metadata"]["labels"] for d in by_kind(objects, "Deployment")]


def _check_deployment(obj: Json, objects: list[Json]) -> list[str]:
    name = obj["metadata"]["name"]
    spec = obj["spec"]
    problems = []
    if not matches(spec["selector"]["matchLabels"], spec["template"]["metadata"]["labels"]):
        problems.append(f"Deployment {name}: selector does not match the pod labels")
    containers = pod_containers(obj)
    if not containers or not all(c.get("name") and c.get("image") for c in containers):
        problems.append(f"Deployment {name}: containers need a name and an image")
    config_maps = {o["metadata"]["name"] for o in by_kind(objects, "ConfigMap")}
    secrets = {o["metadata"]["name"] for o in by_kind(objects, "Secret")}
    for volume in pod_spec(obj).get("volumes") or []:
        if "configMap" in volume and volume["configMap"]["name"] not in config_maps:
            problems.append(f"Deployment {name}: no ConfigMap {volume['configMap']['name']}")
    for container in containers:
        for source in container.get("envFrom") or []:
            if "secretRef" in source and source["secretRef"]["name"] not in secrets:
                problems.append(f"Deployment {name}: no Secret {source['secretRef']['name']}")
    return problems


def _check_service(obj: Json, objects: list[Json]) -> list[str]:
    name = obj["metadata"]["name"]
    ports = obj["spec"].get("ports") or []
    if not ports or not all("port" in p for p in ports):
        return [f"Service {name}: spec.ports with a port each"]
    pods = [
        d
        for d in by_kind(objects, "Deployment")
        if matches(obj["spec"].get("selector", {}), d["spec"]["template"]["metadata"]["labels"])
    ]
    if not pods:
        return [f"Service {name}: its selector matches no Deployment's pods"]
    named = {p.get("name") for d in pods for c in pod_containers(d) for p in c.get("ports") or []}
    return [
        f"Service {name}: targetPort {p['targetPort']} is no container port name"
        for p in ports
        if isinstance(p.get("targetPort"), str) and p["targetPort"] not in named
    ]


def _check_hpa(obj: Json, objects: list[Json]) -> list[str]:
    target = obj["spec"]["scaleTargetRef"]
    name = obj["metadata"]["name"]
    if target.get("kind") != "Deployment":
        return [f"HorizontalPodAutoscaler {name}: scales a {target.get('kind')}"]
    deployments = [
        d for d in by_kind(objects, "Deployment") if d["metadata"]["name"] == target["name"]
    ]
    if not deployments:
        return [f"HorizontalPodAutoscaler {name}: no Deployment {target['name']}"]
    if not all(
        "cpu" in c.get("resources", {}).get("requests", {}) for c in pod_containers(deployments[0])
    ):
        return [f"HorizontalPodAutoscaler {name}: CPU utilization needs CPU requests"]
    spec = obj["spec"]
    if not 1 <= spec.get("minReplicas", 1) <= spec["maxReplicas"]:
        return [f"HorizontalPodAutoscaler {name}: bad replica bounds"]
    return []


def _check_pdb(obj: Json, objects: list[Json]) -> list[str]:
    selector = obj["spec"].get("selector", {}).get("matchLabels", {})
    if not any(matches(selector, labels) for labels in _pod_labels(objects)):
        return [f"PodDisruptionBudget {obj['metadata']['name']}: selects no pods"]
    return []


def _check_service_monitor(obj: Json, objects: list[Json]) -> list[str]:
    name = obj["metadata"]["name"]
    selector = obj["spec"]["selector"]["matchLabels"]
    services = [
        s for s in by_kind(objects, "Service") if matches(selector, s["metadata"].get("labels", {}))
    ]
    if not services:
        return [f"ServiceMonitor {name}: selects no Service"]
    ports = {p.get("name") for s in services for p in s["spec"]["ports"]}
    return [
        f"ServiceMonitor {name}: no Service port named {e.get('port')}"
        for e in obj["spec"]["endpoints"]
        if e.get("port") not in ports
    ]


def _check_prometheus_rule(obj: Json, _objects: list[Json]) -> list[str]:
    groups = obj["spec"].get("groups") or []
    if not groups or not all(g.get("name") and g.get("rules") for g in groups):
        return [f"PrometheusRule {obj['metadata']['name']}: groups with a name and rules"]
    return []


KIND_CHECKS: dict[str, Callable[[Json, list[Json]], list[str]]] = {
    "Deployment": _check_deployment,
    "Service": _check_service,
    "HorizontalPodAutoscaler": _check_hpa,
    "PodDisruptionBudget": _check_pdb,
    "ServiceMonitor": _check_service_monitor,
    "PrometheusRule": _check_prometheus_rule,
}
API_VERSIONS = {
    "Namespace": "v1",
    "ConfigMap": "v1",
    "Secret": "v1",
    "Service": "v1",
    "Deployment": "apps/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "PodDisruptionBudget": "policy/v1",
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "PrometheusRule": "monitoring.coreos.com/v1",
}


def k8s_problems(objects: list[Json]) -> list[str]:
    problems = []
    for obj in objects:
        kind, metadata = obj.get("kind"), obj.get("metadata") or {}
        if not (obj.get("apiVersion") and kind and metadata.get("name")):
            problems.append(f"an object without apiVersion, kind or metadata.name: {obj}")
            continue
        if API_VERSIONS.get(kind) != obj["apiVersion"]:
            problems.append(f"{kind} {metadata['name']}: unexpected apiVersion {obj['apiVersion']}")
        if kind not in CLUSTER_SCOPED and metadata.get("namespace") != NAMESPACE:
            problems.append(f"{kind} {metadata['name']}: not in namespace {NAMESPACE}")
        check = KIND_CHECKS.get(kind)
        if check is not None:
            problems += check(obj, objects)
    return problems
