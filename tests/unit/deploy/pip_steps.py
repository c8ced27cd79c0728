"""The ``pip install`` steps of scripts/install.sh (the README's install, through
``make install``) and of the Dockerfile's RUN lines, and how two lists of them differ."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from tests.unit.deploy.dockerfile import stage
from tests.unit.deploy.paths import INSTALL_SH


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


def pip_installs(argv: list[str]) -> list[PipInstall]:
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
    runs = [i.args for i in stage("builder") if i.keyword == "RUN"]
    return [step for run in runs for argv in _commands(run) for step in pip_installs(argv)]


def install_sh_pip_installs() -> list[PipInstall]:
    lines = INSTALL_SH.read_text("utf-8").splitlines()
    commands = [shlex.split(line) for line in lines if "pip install" in line]
    return [step for argv in commands for step in pip_installs(argv)]


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
