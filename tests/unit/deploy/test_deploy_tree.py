"""The deploy tree: every YAML file under deploy/ parses, and the deployment files exist."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.unit.deploy.paths import COMPOSE, DEPLOY, DOCKERFILE, DOCKERIGNORE, K8S, PROMETHEUS_RULE


def _yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_under_deploy_parses(path: Path) -> None:
    documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    assert documents, f"{path}: empty"
    assert all(isinstance(doc, dict) for doc in documents if doc is not None), path


def test_the_deploy_files_exist() -> None:
    for path in (DOCKERFILE, DOCKERIGNORE, COMPOSE, K8S / "kustomization.yaml", PROMETHEUS_RULE):
        assert path.is_file(), path
    assert (K8S / "README.md").is_file()
