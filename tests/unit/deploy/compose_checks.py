"""A structural check of a Compose file, as far as deploy/compose.yaml goes: what Compose
would refuse it for, or silently get wrong (the Compose plugin and the compose-spec schema
are not on the build machine; this check always runs)."""

from __future__ import annotations

import re

from tests.unit.deploy.compose import PORT, has_healthcheck
from tests.unit.deploy.paths import COMPOSE, Json

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
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:us|ms|s|m|h))+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
        match = PORT.match(str(port))
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
        if condition == "service_healthy" and not has_healthcheck(other):
            problems.append(f"{name}: waits for {target} to be healthy, which has no check")
        if other.get("profiles") and not service.get("profiles") and spec.get("required", True):
            problems.append(
                f"{name}: needs {target}, which only runs in profiles {other['profiles']}"
            )
    return problems


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
