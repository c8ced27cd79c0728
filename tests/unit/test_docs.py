"""The documentation (README.md and docs/*.md) stays true to the code.

Each test reads something from the code (the settings models, the app's routes, the metrics
registry, the CLI parser, the package tree) and fails, saying what is missing and where to add
it, when the documentation does not mention it. Links between the pages must resolve, and the
README must stay a short front page.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import re
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Literal

import pytest
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from proxy.app import create_app
from proxy.cli import build_parser
from proxy.metrics import Metrics
from proxy.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_LINES = 250
PACKAGES = ("proxy", "cache", "audit")


@cache
def _generator() -> ModuleType:
    """scripts/config_reference.py, imported from its file (scripts/ is not a package)."""
    path = ROOT / "scripts" / "config_reference.py"
    spec = importlib.util.spec_from_file_location("config_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def _text(paths: list[Path]) -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in paths)


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


# (a) The configuration reference.


def test_configuration_reference_matches_the_settings_models() -> None:
    config_reference = _generator()
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    found = config_reference.current(text)
    assert found is not None, (
        "docs/configuration.md has lost its generated section: put back the two marker lines "
        f"{config_reference.BEGIN!r} and {config_reference.END!r}, then run "
        "`python scripts/config_reference.py`"
    )
    wanted = config_reference.render()
    diff = "\n".join(
        list(
            difflib.unified_diff(
                found.splitlines(),
                wanted.splitlines(),
                "in the file",
                "from the models",
                n=0,
                lineterm="",
            )
        )[:40]
    )
    assert found == wanted, (
        "docs/configuration.md's configuration reference differs from the settings models: "
        f"run `python scripts/config_reference.py` and commit the result.\n{diff}"
    )


def test_every_setting_has_a_docstring() -> None:
    missing = [
        f"{s.name}: add an attribute docstring right after the field in {s.owner}"
        for s in _generator().undocumented()
    ]
    assert not missing, "settings without a description:\n" + "\n".join(missing)


class _Inner(BaseModel):
    size: int = Field(default=3, ge=1, le=9)
    """How big."""


class _Sample(BaseSettings):
    """A configuration the generator has never seen."""

    model_config = SettingsConfigDict(env_prefix="X_", env_nested_delimiter="__")

    items: tuple[_Inner, ...] = ()
    """Items."""
    group: _Inner = _Inner()
    """A group."""
    kinds: frozenset[Literal["a", "b"]] = frozenset()
    """Kinds."""
    limit: float | None = None
    """A limit."""
    by_name: dict[str, _Inner] = Field(default_factory=dict)
    """Per name."""


def test_the_generator_walks_any_model_without_naming_its_fields() -> None:
    config_reference = _generator()
    found = config_reference.sections(_Sample)
    rows = {s.name: s for section in found for s in section.settings}
    assert [section.path for section in found] == ["", "items[]", "group"]
    assert rows["items"].type == "list of object (`items[].*` below)"
    assert rows["items"].env == "X_ITEMS"
    assert rows["items[].size"].env is None
    assert rows["items[].size"].type == "int, 1 to 9"
    assert rows["group.size"].env == "X_GROUP__SIZE"
    assert rows["group.size"].default == "`3`"
    assert rows["kinds"].type == "list of one of `a`, `b`"
    assert rows["kinds"].default == "`[]`"
    assert rows["limit"].type == "float or null"
    assert rows["by_name"].type == "map of string to object (fields as `items[].*`)"
    assert rows["limit"].doc == "A limit."
    rendered = config_reference.render(found)
    assert "| `group.size` | int, 1 to 9 | `3` | `X_GROUP__SIZE` | How big. |" in rendered
    assert "Set in the config file, or as JSON inside `X_ITEMS`." in rendered


# (b) Routes.


def _routes(app: object) -> Iterator[tuple[str, str]]:
    """(method, path) of every route the app serves, included routers flattened."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # a FastAPI that flattens included routers into app.routes itself
        routes: list[object] = list(getattr(app, "routes", []))
    else:
        routes = list(iter_route_contexts(getattr(app, "routes", [])))
    for route in routes:
        path = getattr(route, "path", None)
        for method in sorted(getattr(route, "methods", None) or ()):
            if path is not None and method != "HEAD":
                yield method, re.sub(r"\{(\w+):\w+\}", r"{\1}", path)


def _route_pattern(method: str, path: str) -> re.Pattern[str]:
    """``METHOD /path`` with any name for each path parameter, not followed by more path."""
    parts = [
        r"\{[^}\s]+\}" if re.fullmatch(r"\{\w+\}", part) else re.escape(part)
        for part in re.split(r"(\{\w+\})", path)
    ]
    return re.compile(rf"(?<![\w]){method} {''.join(parts)}(?![\w/{{.-])")


def test_every_route_is_documented_in_api_md() -> None:
    app = create_app(Settings(auth={"enabled": False}))
    fastapi_own = {app.openapi_url, app.docs_url, app.redoc_url}
    fastapi_own.add(app.swagger_ui_oauth2_redirect_url)
    served = [(m, p) for m, p in _routes(app) if p not in fastapi_own]
    assert ("POST", "/v1/chat/completions") in served  # the walk itself works
    api = (DOCS / "api.md").read_text(encoding="utf-8")
    missing = [
        f"{method} {path}: add a row `{method} {path}` to the Routes table of docs/api.md"
        for method, path in served
        if not _route_pattern(method, path).search(api)
    ]
    assert not missing, "routes the app serves that docs/api.md does not name:\n" + "\n".join(
        missing
    )


# (c) Metrics.


def test_every_metric_is_documented_in_operations_md() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    names = [
        family.name + ("_total" if family.type == "counter" else "")
        for family in registry.collect()
    ]
    assert "vetcache_requests_total" in names  # the walk itself works
    operations = (DOCS / "operations.md").read_text(encoding="utf-8")
    missing = [
        f"{name}: add a row to the Metrics table of docs/operations.md"
        for name in names
        if not re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", operations)
    ]
    assert not missing, (
        "metrics proxy.metrics registers that docs/operations.md does not name:\n"
        + ("\n".join(missing))
    )


# (d) Commands and their options.


def _long_options(parser: argparse.ArgumentParser) -> list[str]:
    return [
        option
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    ]


def _commands(
    parser: argparse.ArgumentParser, prefix: str = "vetcache"
) -> Iterator[tuple[str, list[str]]]:
    """(command, its long options) for every subcommand, nested ones included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                command = f"{prefix} {name}"
                yield command, _long_options(sub)
                yield from _commands(sub, command)


def _mentions(words: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w-]){re.escape(words)}(?![\w-])")


def test_every_command_and_option_is_documented() -> None:
    parser = build_parser()
    commands = list(_commands(parser))
    assert any(command == "vetcache serve" for command, _ in commands)  # the walk works
    lines = _text(_pages()).splitlines()
    missing: list[str] = []
    for option in _long_options(parser):
        if not any(_mentions(f"vetcache {option}").search(line) for line in lines):
            missing.append(f"vetcache {option}: add it to the Commands table of README.md")
    for command, options in commands:
        about = [line for line in lines if _mentions(command).search(line)]
        if not about:
            missing.append(f"{command}: add a row to the Commands table of README.md")
            continue
        for option in options:
            if not any(_mentions(option).search(line) for line in about):
                missing.append(
                    f"{command} {option}: add it to the `{command}` row of README.md's "
                    "Commands table"
                )
    assert not missing, "commands or options missing from README.md and docs/:\n" + "\n".join(
        missing
    )


# (e) The README stays a front page.


def test_readme_is_short() -> None:
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines (at most {README_MAX_LINES}): move detail into the "
        "topic pages under docs/ and link to them"
    )


# (f) Links.

_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown page."""
    found = set()
    for heading in re.findall(
        r"^#{1,6}\s+(.+?)\s*$", _FENCE.sub("", page.read_text(encoding="utf-8")), re.M
    ):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        found.add(slug)
    return found


def _links(page: Path) -> Iterator[str]:
    yield from _LINK.findall(_FENCE.sub("", page.read_text(encoding="utf-8")))


@pytest.mark.parametrize("page", _pages(), ids=_relative)
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in _links(page):
        if _SCHEME.match(target):
            continue
        path_part, _, anchor = target.partition("#")
        path_part = path_part.split("?")[0]
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.exists():
            broken.append(f"{target}: {resolved} does not exist; fix the path")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target}: {_relative(resolved)} has no heading with anchor #{anchor}")
    assert not broken, f"{_relative(page)} has broken links:\n" + "\n".join(broken)


# Every module has its bullet in the architecture's layout.


def test_every_module_is_in_the_architecture_layout() -> None:
    architecture = (DOCS / "architecture.md").read_text(encoding="utf-8")
    modules = sorted(
        path.relative_to(ROOT).as_posix()
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path.name != "__init__.py" or path.parent == ROOT / package
    )
    assert "proxy/app.py" in modules  # the walk itself works
    missing = [
        f"{module}: add a bullet `- \\`{module}\\`: what it is for` to the Layout of "
        "docs/architecture.md"
        for module in modules
        if f"`{module}`" not in architecture
    ]
    assert not missing, "modules docs/architecture.md does not list:\n" + "\n".join(missing)
