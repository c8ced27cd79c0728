"""``python -m tests.tools.sizes``: modules of at most 400 lines (unless allowlisted with a
reason), functions of at most 60, on the real tree and on a planted one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.tools import sizes


def test_the_real_tree_keeps_the_size_rules() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.tools.sizes"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def function(name: str, lines: int, decorators: int = 0, indent: str = "") -> str:
    """A function of exactly ``lines`` lines, decorators and docstring included."""
    body = [f"{indent}@decorator{i}" for i in range(decorators)]
    body += [f"{indent}def {name}() -> None:", f'{indent}    """Docstring."""']
    body += [f"{indent}    x = {i}" for i in range(lines - len(body))]
    return "\n".join(body) + "\n"


def plant(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")


# 59 lines of its own and an inner function of 20 in its body: 79 lines in all.
OUTER = function("outer", 59).replace(
    "    x = 0\n", function("inner", 20, indent="    ") + "    x = 0\n", 1
)
TREE = {
    "proxy/big.py": "x = 1\n" * 401,
    "cache/full.py": "x = 1\n" * 400,
    "audit/functions.py": (
        function("fits", 60)  # lines 1-60
        + function("decorated", 61, decorators=2)  # decorators on 61-62, def on 63
        + "class Service:\n"  # line 122
        + function("method", 61, indent="    ")
        + "\n"
        + OUTER  # line 185
    ),
    "scripts/tool.py": function("main", 70),
    "tests/unit/test_long.py": function("test_long", 61),
    "deploy/elsewhere.py": "x = 1\n" * 500 + function("ignored", 99),  # not scanned
}


def test_a_planted_tree_reports_each_violation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plant(tmp_path, TREE)
    assert sizes.main(["--root", str(tmp_path)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "audit/functions.py:63: function decorated is 61 lines (max 60)",
        "audit/functions.py:123: function Service.method is 61 lines (max 60)",
        "audit/functions.py:185: function outer is 79 lines (max 60)",
        "proxy/big.py: 401 lines (max 400)",
        "scripts/tool.py:1: function main is 70 lines (max 60)",
        "tests/unit/test_long.py:1: function test_long is 61 lines (max 60)",
        "6 violation(s) in 5 files",
    ]


def test_the_allowlist_exempts_a_module_and_reports_stale_entries(tmp_path: Path) -> None:
    plant(tmp_path, {name: TREE[name] for name in ("proxy/big.py", "cache/full.py")})
    allowlist = {
        "proxy/big.py": "one topic",
        "cache/full.py": "was longer",
        "audit/gone.py": "was split",
    }
    assert sizes.violations(tmp_path, allowlist) == [
        "cache/full.py: 400 lines, within 400: drop it from ALLOWLIST",
        "audit/gone.py: in ALLOWLIST but not found",
    ]
    assert sizes.violations(tmp_path, {}) == ["proxy/big.py: 401 lines (max 400)"]
