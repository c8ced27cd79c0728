"""The import graph of ``proxy``, ``audit`` and ``cache``, and the imports that go backwards.

    python -m tests.tools.imports [--modules] [--root DIR]

The rule (DESIGN.md): ``proxy -> audit -> cache`` and ``proxy -> cache``; ``cache`` imports
neither ``audit`` nor ``proxy``; ``audit`` never imports ``proxy``; none of them imports
``tests``. Every module of the three packages is parsed with ``ast`` (never imported), and
every import counts wherever it is: at top level, inside a function, under
``if TYPE_CHECKING:``, relative or absolute.

Prints the package graph (``proxy -> audit (23 imports)``; an import is one target module on
one line), then each backwards import as ``FILE:LINE: cache imports audit.x``, and exits 1
when there is one, else 0. ``--modules`` adds the module graph (imports that only run later,
inside a function or under ``TYPE_CHECKING``, marked ``~``) and the import cycles among the
imports that run when a module is first imported (top level; a package's ``__init__`` counts
as its own module, and ``import a.b`` as an import of ``a.b`` only). Cycles are shown, not
failed.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("proxy", "audit", "cache")
"""Scanned, in layer order (top first)."""
ALLOWED: dict[str, frozenset[str]] = {
    "proxy": frozenset({"audit", "cache"}),
    "audit": frozenset({"cache"}),
    "cache": frozenset(),
}
"""Which other packages each package may import."""
CHECKED = (*PACKAGES, "tests")
"""Import targets the rule speaks about; anything else (the standard library, third-party
packages) is not in the graph."""
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Import:
    """One imported module, on one line of one module."""

    path: str
    """The importing file, relative to the root."""
    line: int
    source: str
    """The importing module (``cache.semantic``; a package's ``__init__`` is ``cache``)."""
    target: str
    """The imported module, as far as the tree tells (``from cache import keys`` imports
    ``cache.keys`` when that is a module, else ``cache``)."""
    deferred: bool
    """Inside a function or under ``if TYPE_CHECKING:``: not run when the module loads."""

    @property
    def source_package(self) -> str:
        return self.source.split(".")[0]

    @property
    def target_package(self) -> str:
        return self.target.split(".")[0]

    @property
    def backwards(self) -> bool:
        return (
            self.target_package in CHECKED
            and self.target_package != self.source_package
            and self.target_package not in ALLOWED[self.source_package]
        )


# --- reading the tree ----------------------------------------------------------------------


def module_files(root: Path) -> dict[str, Path]:
    """Module name -> file, for every ``.py`` file of the packages under ``root``."""
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


class _Collector(ast.NodeVisitor):
    """The imports of one module, each with whether it runs when the module loads."""

    def __init__(self, module: str, is_package: bool, known: set[str]) -> None:
        self.package = module if is_package else module.rpartition(".")[0]
        self.known = known
        self.deferred = False
        self.found: list[tuple[int, str, bool]] = []

    def _later(self, node: ast.AST) -> None:
        outer, self.deferred = self.deferred, True
        self.generic_visit(node)
        self.deferred = outer

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _later

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        outer, self.deferred = self.deferred, True
        for child in node.body:
            self.visit(child)
        self.deferred = outer
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append((node.lineno, alias.name, self.deferred))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = self._base(node)
        if base is None:
            return
        targets = set()
        for alias in node.names:
            candidate = f"{base}.{alias.name}" if base else alias.name
            targets.add(candidate if candidate in self.known else base)
        for target in sorted(t for t in targets if t):
            self.found.append((node.lineno, target, self.deferred))

    def _base(self, node: ast.ImportFrom) -> str | None:
        """The module ``from X import ...`` names, relative imports resolved; None when a
        relative import climbs above the root."""
        if not node.level:
            return node.module or ""
        parts = self.package.split(".") if self.package else []
        if node.level - 1 > len(parts):
            return None
        parts = parts[: len(parts) - (node.level - 1)]
        if node.module:
            parts.append(node.module)
        return ".".join(parts)


def read_imports(root: Path) -> list[Import]:
    """Every import of the packages under ``root``, in file and line order."""
    modules = module_files(root)
    known = set(modules)
    imports: list[Import] = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        collector = _Collector(module, path.name == "__init__.py", known)
        collector.visit(tree)
        relative = path.relative_to(root).as_posix()
        for line, target, deferred in collector.found:
            imports.append(Import(relative, line, module, target, deferred))
    return sorted(set(imports), key=lambda i: (i.path, i.line, i.target, i.deferred))


# --- the graphs ----------------------------------------------------------------------------


def package_edges(imports: Sequence[Import]) -> Counter[tuple[str, str]]:
    """(importing package, imported package) -> how many imports, between different
    packages the rule speaks about."""
    return Counter(
        (i.source_package, i.target_package)
        for i in imports
        if i.target_package in CHECKED and i.target_package != i.source_package
    )


def _edge_order(edge: tuple[str, str]) -> tuple[int, int]:
    source, target = edge
    return CHECKED.index(source), CHECKED.index(target)


def package_graph_lines(imports: Sequence[Import]) -> list[str]:
    lines = ["package imports (allowed: proxy -> audit -> cache, proxy -> cache):"]
    edges = package_edges(imports)
    for (source, target), count in sorted(edges.items(), key=lambda e: _edge_order(e[0])):
        mark = "" if target in ALLOWED[source] else "  BACKWARDS"
        lines.append(f"  {source} -> {target} ({count} import{'s' * (count != 1)}){mark}")
    if not edges:
        lines.append("  (none)")
    return lines


def module_graph(imports: Sequence[Import], *, top_level_only: bool) -> dict[str, set[str]]:
    """Module -> the modules of the three packages it imports (self-imports left out)."""
    graph: dict[str, set[str]] = {}
    for i in imports:
        graph.setdefault(i.source, set())
        wanted = i.target_package in PACKAGES and i.target != i.source
        if wanted and not (top_level_only and i.deferred):
            graph[i.source].add(i.target)
    return graph


def module_graph_lines(imports: Sequence[Import], modules: Sequence[str]) -> list[str]:
    top = module_graph(imports, top_level_only=True)
    every = module_graph(imports, top_level_only=False)
    lines = ["module imports (~: only inside a function or under TYPE_CHECKING):"]
    for module in sorted(modules):
        imported = every.get(module, set())
        targets = [t if t in top[module] else f"{t}~" for t in sorted(imported)]
        lines.append(f"  {module} -> {', '.join(targets) if targets else '(none)'}")
    return lines


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """The modules ``start`` imports, directly or through others (itself only on a cycle)."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for child in graph.get(todo.pop(), set()) - seen:
            seen.add(child)
            todo.append(child)
    return seen


def _shortest_cycle(graph: dict[str, set[str]], members: set[str], start: str) -> list[str]:
    """start -> ... -> start, the shortest way through ``members``."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for child in sorted(graph.get(node, set()) & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    return [start]


def import_cycles(imports: Sequence[Import]) -> list[list[str]]:
    """One cycle per group of modules that import each other at top level."""
    graph = module_graph(imports, top_level_only=True)
    reach = {module: _reachable(graph, module) for module in graph}
    cycles: list[list[str]] = []
    placed: set[str] = set()
    for module in sorted(graph):
        if module in placed or module not in reach[module]:
            continue
        group = {other for other in reach[module] if module in reach[other]}
        placed |= group
        cycles.append(_shortest_cycle(graph, group, module))
    return cycles


def cycle_lines(imports: Sequence[Import]) -> list[str]:
    cycles = import_cycles(imports)
    lines = [f"import cycles at module top level: {len(cycles) or 'none'}"]
    lines += [f"  {' -> '.join(cycle)}" for cycle in cycles]
    return lines


# --- the command ---------------------------------------------------------------------------


def violation_lines(imports: Sequence[Import]) -> list[str]:
    return [
        f"{i.path}:{i.line}: {i.source_package} imports {i.target}" for i in imports if i.backwards
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.tools.imports", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--modules", action="store_true", help="also the module graph, cycles")
    parser.add_argument("--root", type=Path, default=ROOT, help="the project (default: this one)")
    args = parser.parse_args(argv)
    imports = read_imports(args.root)
    modules = list(module_files(args.root))
    lines = package_graph_lines(imports)
    if args.modules:
        lines += ["", *module_graph_lines(imports, modules), "", *cycle_lines(imports)]
    violations = violation_lines(imports)
    lines.append("")
    if violations:
        lines.append(f"{len(violations)} backwards import(s):")
        lines += violations
    else:
        lines.append(f"ok: no backwards import in {len(modules)} modules")
    print("\n".join(lines))
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
