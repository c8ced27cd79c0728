"""deploy/Dockerfile parsed into its logical instructions, and the readers the tests use."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from tests.unit.deploy.paths import DOCKERFILE


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


def dockerfile() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


def stage(name: str) -> list[Instruction]:
    return [i for i in dockerfile() if i.stage == name]


def arg_defaults(instructions: list[Instruction]) -> dict[str, str]:
    defaults: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "ARG" and "=" in instruction.args:
            name, _, value = instruction.args.partition("=")
            defaults[name.strip()] = value.strip()
    return defaults


def dockerfile_env(instructions: list[Instruction]) -> dict[str, str]:
    """ENV key=value pairs (several per instruction)."""
    found: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "ENV":
            for token in shlex.split(instruction.args):
                name, _, value = token.partition("=")
                found[name] = value
    return found


def exec_form(instruction: Instruction) -> list[str]:
    value = json.loads(instruction.args)
    assert isinstance(value, list), instruction
    assert all(isinstance(item, str) for item in value), instruction
    return value


def one(instructions: list[Instruction], keyword: str) -> Instruction:
    found = [i for i in instructions if i.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {len(found)}"
    return found[0]


def python_snippets(command: str) -> list[str]:
    """The code of every ``python -c CODE`` in a shell command."""
    tokens = shlex.split(command)
    return [
        tokens[i + 2]
        for i in range(len(tokens) - 2)
        if tokens[i] in ("python", "python3") and tokens[i + 1] == "-c"
    ]


def exposed_ports() -> set[int]:
    return {int(port) for port in one(stage("runtime"), "EXPOSE").args.split()}
