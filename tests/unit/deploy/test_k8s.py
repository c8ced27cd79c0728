"""deploy/k8s renders (``kubectl kustomize`` when kubectl is on PATH, else the Python
renderer; the two must agree when both can run): the base without operator CRDs, the
monitoring component on its own, and the stack with monitoring, with every object passing
the checks of ``k8s_checks``, which catch what they are for."""

from __future__ import annotations

import copy
import re
import shutil

import pytest

from tests.unit.deploy.k8s_checks import k8s_problems
from tests.unit.deploy.k8s_render import (
    by_kind,
    named,
    pod_containers,
    read_kustomization,
    render,
    render_kubectl,
    render_python,
)
from tests.unit.deploy.paths import K8S, MONITORING, NAMESPACE, Json


def test_kubectl_kustomize_renders_the_base() -> None:
    objects = render(K8S)
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in objects)
    assert {kind for kind, _ in kinds} == {
        "Namespace",
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }, kinds
    assert not by_kind(objects, "ServiceMonitor"), "operator CRDs stay out of the base"
    assert k8s_problems(objects) == []


def test_the_monitoring_component_renders_on_its_own() -> None:
    objects = render(MONITORING)
    assert sorted(o["kind"] for o in objects) == [
        "PrometheusRule",
        "ServiceMonitor",
        "ServiceMonitor",
    ]
    assert all(o["metadata"]["namespace"] == NAMESPACE for o in objects)


def test_the_stack_with_monitoring_is_consistent(stack: list[Json]) -> None:
    assert k8s_problems(stack) == []
    assert len(by_kind(stack, "ServiceMonitor")) == 2


def test_the_kubernetes_checks_catch_what_they_are_for(stack: list[Json]) -> None:
    broken = copy.deepcopy(stack)
    gateway = named(broken, "Deployment", "vetcache-gateway")
    gateway["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] = "other"
    named(broken, "HorizontalPodAutoscaler", "vetcache-gateway")["spec"]["scaleTargetRef"][
        "name"
    ] = "gone"
    named(broken, "Service", "vetcache-audit-worker")["spec"]["ports"][0]["targetPort"] = "metric"
    named(broken, "ServiceMonitor", "vetcache-gateway")["spec"]["endpoints"][0]["port"] = "web"
    del named(broken, "Secret", "vetcache-secrets")["metadata"]["namespace"]
    text = "\n".join(k8s_problems(broken))
    for expected in (
        "selector does not match",
        "no Deployment gone",
        "targetPort metric",
        "port named web",
        "not in namespace",
    ):
        assert expected in text, expected


def test_the_python_renderer_agrees_with_kubectl() -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not on PATH")
    generated = {g["name"] for g in read_kustomization(K8S).get("configMapGenerator") or []}

    def identity(obj: Json) -> tuple[str, str, str]:
        name = obj["metadata"]["name"]
        base = re.sub(r"-[a-z0-9]{10}$", "", name)
        if obj["kind"] == "ConfigMap" and base in generated:
            name = base
        return obj["kind"], name, obj["metadata"].get("namespace", "")

    for directory in (K8S, MONITORING):
        ours = sorted(identity(o) for o in render_python(directory))
        assert ours == sorted(identity(o) for o in render_kubectl(directory)), directory
    images = {c["image"] for o in render_python(K8S) for c in pod_containers(o)}
    assert images == {c["image"] for o in render_kubectl(K8S) for c in pod_containers(o)}
