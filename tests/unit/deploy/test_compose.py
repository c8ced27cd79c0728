"""deploy/compose.yaml is a valid Compose file. ``docker compose config`` runs when the
Compose plugin is installed. It is not on the build machine (``docker: unknown command:
docker compose``), and the compose-spec JSON schema is not on disk there either (no network
but package registries); the schema check runs when check-jsonschema, which bundles that
schema, is installed. So a hand-written structural check always runs: known service keys,
image or build, well-formed ports and environment, depends_on targets and conditions,
profiles, health checks, bind mounts that exist, pinned images."""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.unit.deploy.compose import compose, compose_raw, interpolate
from tests.unit.deploy.compose_checks import compose_problems
from tests.unit.deploy.paths import COMPOSE


def test_compose_file_is_well_formed() -> None:
    assert compose_problems(compose()) == []


def test_the_structural_check_catches_what_it_is_for() -> None:
    broken = copy.deepcopy(compose())
    services = broken["services"]
    services["gateway"]["depend_on"] = services["gateway"].pop("depends_on")
    services["audit-worker"]["depends_on"] = {"redis-typo": {"condition": "service_healthy"}}
    services["redis"]["image"] = "redis/redis-stack-server:latest"
    services["grafana"]["ports"] = ["localhost:3000"]
    services["grafana"]["volumes"] = ["./nowhere:/x:ro", "undeclared:/y"]
    services["prometheus"]["configs"] = [{"source": "missing", "target": "/x"}]
    del services["redis"]["healthcheck"]
    services["fake-upstream"]["healthcheck"]["interval"] = "15 seconds"
    text = "\n".join(compose_problems(broken))
    for expected in (
        "gateway: unknown key depend_on",
        "unknown service redis-typo",
        "not pinned",
        "malformed port 'localhost:3000'",
        "./nowhere does not exist",
        "volume undeclared",
        "config missing",
        "is not a duration",
    ):
        assert expected in text, expected
    services["gateway"]["depends_on"] = {"redis": {"condition": "service_healthy"}}
    assert "redis to be healthy, which has no check" in "\n".join(compose_problems(broken))


def test_compose_interpolation_is_understood() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d} ${UNSET:-d} ${EMPTY:-d} ${EMPTY-d} $$1", env) == "x d d  $1"
    assert interpolate("${SET:+alt}${UNSET:+alt}", env) == "alt"
    with pytest.raises(KeyError, match="UNSET: needed"):
        interpolate("${UNSET:?needed}", env)
    with pytest.raises(AssertionError, match="bare"):
        interpolate("cost $5", env)


def _compose_plugin() -> bool:
    if shutil.which("docker") is None:
        return False
    result = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, timeout=60, check=False
    )
    return result.returncode == 0


def test_docker_compose_config_accepts_the_file() -> None:
    if not _compose_plugin():
        pytest.skip("the docker compose plugin is not installed (docker compose version fails)")
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE), "--profile", "fake", "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_compose_file_matches_the_compose_spec_schema() -> None:
    spec = importlib.util.find_spec("check_jsonschema")
    if spec is None or spec.origin is None or importlib.util.find_spec("jsonschema") is None:
        pytest.skip("check-jsonschema (which bundles the compose-spec schema) is not installed")
    schema_path = Path(spec.origin).parent / "builtin_schemas" / "vendor" / "compose-spec.json"
    schema = json.loads(schema_path.read_text("utf-8"))
    jsonschema = importlib.import_module("jsonschema")
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose_raw())]
    assert errors == []
