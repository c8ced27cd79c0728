"""deploy/k8s rendered as ``kustomize build`` would, and the lookups into the rendered objects.

``kubectl kustomize`` when kubectl is on PATH, else a small Python renderer of the
kustomize features deploy/k8s uses (resources, components, configMapGenerator, namespace,
images)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import yaml

from tests.unit.deploy.paths import Json, load

CLUSTER_SCOPED = frozenset(
    {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
)
_KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def read_kustomization(directory: Path) -> Json:
    for name in _KUSTOMIZATION_NAMES:
        if (directory / name).is_file():
            return load(directory / name)
    raise FileNotFoundError(f"no kustomization in {directory}")


def render_python(directory: Path) -> list[Json]:
    """What ``kustomize build`` makes of the features deploy/k8s uses: resources (files
    and directories, recursively), components, configMapGenerator (no hash suffix),
    namespace and images. The fallback when kubectl is not on PATH."""
    kustomization = read_kustomization(directory)
    objects: list[Json] = []
    for entry in kustomization.get("resources") or []:
        path = directory / entry
        if path.is_dir():
            objects += render_python(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text("utf-8")) if doc]
    for generator in kustomization.get("configMapGenerator") or []:
        data = {}
        for item in generator.get("files") or []:
            key, _, source = item.rpartition("=")
            data[key or Path(source).name] = (directory / source).read_text("utf-8")
        for literal in generator.get("literals") or []:
            key, _, value = literal.partition("=")
            data[key] = value
        metadata = {"name": generator["name"]}
        objects.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}
        )
    for component in kustomization.get("components") or []:
        objects += render_python(directory / component)
    namespace = kustomization.get("namespace")
    for obj in objects:
        if namespace and obj["kind"] not in CLUSTER_SCOPED:
            obj["metadata"]["namespace"] = namespace
        _set_images(obj, kustomization.get("images") or [])
    return objects


def _set_images(obj: Json, images: list[Json]) -> None:
    for container in pod_containers(obj):
        for image in images:
            name, _, tag = str(container["image"]).partition(":")
            if name == image["name"]:
                container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"


def render_kubectl(directory: Path) -> list[Json]:
    kubectl = shutil.which("kubectl")
    assert kubectl is not None
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render(directory: Path) -> list[Json]:
    return render_kubectl(directory) if shutil.which("kubectl") else render_python(directory)


def by_kind(objects: list[Json], kind: str) -> list[Json]:
    return [obj for obj in objects if obj["kind"] == kind]


def named(objects: list[Json], kind: str, name: str) -> Json:
    (found,) = [obj for obj in by_kind(objects, kind) if obj["metadata"]["name"] == name]
    return found


def pod_spec(obj: Json) -> Json:
    spec: Json = obj.get("spec", {}).get("template", {}).get("spec", {})
    return spec


def pod_containers(obj: Json) -> list[Json]:
    containers: list[Json] = pod_spec(obj).get("containers") or []
    return containers


def matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())
