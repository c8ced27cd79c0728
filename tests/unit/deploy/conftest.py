"""The Kubernetes stack as a cluster with the Prometheus operator would apply it."""

from __future__ import annotations

import shutil

import pytest
import yaml

from tests.unit.deploy.k8s_render import read_kustomization, render
from tests.unit.deploy.paths import K8S, Json


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> list[Json]:
    """deploy/k8s with the monitoring component switched on (as a cluster with the
    Prometheus operator would use it), rendered from a copy."""
    copy_dir = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, copy_dir)
    kustomization = read_kustomization(copy_dir)
    kustomization["components"] = ["monitoring"]
    (copy_dir / "kustomization.yaml").write_text(yaml.safe_dump(kustomization), encoding="utf-8")
    return render(copy_dir)
