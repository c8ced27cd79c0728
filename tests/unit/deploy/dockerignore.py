""".dockerignore: its patterns, and whether a path of the build context is left out."""

from __future__ import annotations

import fnmatch
from pathlib import Path

from tests.unit.deploy.paths import DOCKERIGNORE


def dockerignore_patterns() -> list[str]:
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
