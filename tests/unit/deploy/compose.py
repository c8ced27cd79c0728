"""deploy/compose.yaml as Compose reads it: ``${VAR}`` interpolation, its services, their
environment, and which services are built from deploy/Dockerfile."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tests.unit.deploy.paths import COMPOSE, DOCKERFILE, Json, load

PORT = re.compile(
    r"^(?:(?P<ip>\d{1,3}(?:\.\d{1,3}){3}):)?(?:(?P<host>\d+(?:-\d+)?):)?"
    r"(?P<container>\d+)(?:/(?:tcp|udp))?$"
)
"""A short-syntax ``ports:`` entry: ``[IP:][HOST:]CONTAINER[/PROTOCOL]``."""
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


def compose_raw() -> Json:
    return load(COMPOSE)


def compose() -> Json:
    """compose.yaml as Compose sees it with no variable set in the shell."""
    data: Json = interpolate_all(compose_raw(), {})
    return data


def compose_services() -> dict[str, Json]:
    services: dict[str, Json] = compose()["services"]
    return services


def service_environment(service: Json) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {
        str(k): "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
        for k, v in env.items()
    }


def built_from_our_dockerfile(service: Json) -> bool:
    build = service.get("build")
    if not isinstance(build, dict):
        return False
    return bool((COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE)


def has_healthcheck(service: Json) -> bool:
    check = service.get("healthcheck")
    if check is not None:
        return not check.get("disable", False) and check.get("test") not in (["NONE"], "NONE")
    return built_from_our_dockerfile(service)  # the image's HEALTHCHECK
