"""Module and function sizes against the project's rule.

    python -m tests.tools.sizes [--root DIR]

No module over ``MAX_MODULE_LINES`` lines unless one topic demands it (``ALLOWLIST``, each
entry with its reason); no function over ``MAX_FUNCTION_LINES`` lines, counted from its first
decorator to its last line (``ast`` end_lineno), docstring included; methods and nested
functions count on their own, and their lines count in the function around them too. Scans
the ``.py`` files of proxy/, cache/, audit/, tests/ and scripts/.

Prints each violation, ``FILE:LINE: function NAME is N lines (max 60)`` and
``FILE: N lines (max 400)`` (and an allowlist entry that no longer applies), and exits 1 when
there is one, else 0.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
SCANNED = ("proxy", "cache", "audit", "tests", "scripts")
ALLOWLIST: dict[str, str] = {}
"""File (relative to the root, "/"-separated) -> why one topic needs more than 400 lines.
An entry for a file that is gone or back under the limit is itself reported."""
ROOT = Path(__file__).resolve().parents[2]


def python_files(root: Path) -> list[Path]:
    return sorted(p for folder in SCANNED for p in (root / folder).rglob("*.py") if p.is_file())


def functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, int, int]]:
    """(qualified name, line of the def, lines from first decorator to end) of every
    function and method, nested ones included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            end = node.end_lineno or node.lineno
            yield f"{prefix}{node.name}", node.lineno, end - start + 1
            yield from functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from functions(node, f"{prefix}{node.name}.")
        else:
            yield from functions(node, prefix)


def file_violations(path: Path, name: str, allowlist: Mapping[str, str]) -> list[str]:
    text = path.read_text(encoding="utf-8")
    found = []
    lines = len(text.splitlines())
    if lines > MAX_MODULE_LINES and name not in allowlist:
        found.append(f"{name}: {lines} lines (max {MAX_MODULE_LINES})")
    if lines <= MAX_MODULE_LINES and name in allowlist:
        found.append(f"{name}: {lines} lines, within {MAX_MODULE_LINES}: drop it from ALLOWLIST")
    for function, line, length in functions(ast.parse(text, filename=str(path))):
        if length > MAX_FUNCTION_LINES:
            found.append(
                f"{name}:{line}: function {function} is {length} lines (max {MAX_FUNCTION_LINES})"
            )
    return found


def violations(root: Path, allowlist: Mapping[str, str] = ALLOWLIST) -> list[str]:
    """Every violation under ``root``, by file then line."""
    found: list[str] = []
    files = {path.relative_to(root).as_posix(): path for path in python_files(root)}
    for name, path in files.items():
        found += file_violations(path, name, allowlist)
    found += [f"{name}: in ALLOWLIST but not found" for name in allowlist if name not in files]
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.tools.sizes", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="the project (default: this one)")
    args = parser.parse_args(argv)
    found = violations(args.root)
    for line in found:
        print(line)
    scanned = len(python_files(args.root))
    if found:
        print(f"{len(found)} violation(s) in {scanned} files")
        return 1
    print(
        f"ok: {scanned} files, none over {MAX_MODULE_LINES} lines, "
        f"no function over {MAX_FUNCTION_LINES}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
