"""``python -m tests.tools.imports``: the real tree keeps the package layering, and the check
fails, naming file and line, on a tree that does not."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.tools import imports


def test_the_real_tree_imports_only_downwards() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.tools.imports", "--modules"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    print(result.stdout, result.stderr)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    edges = [
        m[1] for line in lines if (m := re.fullmatch(r"  (\w+ -> \w+) \(\d+ imports?\)", line))
    ]
    assert set(edges) <= {"proxy -> audit", "proxy -> cache", "audit -> cache"}
    assert "audit -> cache" in edges and "proxy -> audit" in edges
    assert "BACKWARDS" not in result.stdout
    assert "  cache.semantic -> " in result.stdout  # the module graph
    assert lines[-1].startswith("ok: no backwards import in ")


FAKE_TREE = {
    "cache/__init__.py": "",
    "cache/core.py": """\
from typing import TYPE_CHECKING

from .keys import Key

if TYPE_CHECKING:
    from audit.verdicts import Verdict


def prepare() -> None:
    from . import keys
""",
    "cache/keys.py": """\
import json

from cache.core import prepare


class Key:
    def later(self) -> None:
        import cache.core
""",
    "audit/__init__.py": "from cache import core\n",
    "audit/verdicts.py": """\
from cache.keys import Key


class Verdict:
    def explain(self) -> str:
        import proxy.app
        return ""
""",
    "proxy/__init__.py": "",
    "proxy/app.py": "from audit import verdicts\nfrom tests.conftest import ROOT\nfrom . import other\n",
    "proxy/other.py": "",
}


def plant(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")


def test_backwards_imports_at_any_depth_fail_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plant(tmp_path, FAKE_TREE)
    status = imports.main(["--root", str(tmp_path), "--modules"])
    output = capsys.readouterr().out
    print(output)
    assert status == 1
    assert output.splitlines()[-4:] == [
        "3 backwards import(s):",
        "audit/verdicts.py:6: audit imports proxy.app",  # inside a method
        "cache/core.py:6: cache imports audit.verdicts",  # under TYPE_CHECKING
        "proxy/app.py:2: proxy imports tests.conftest",
    ]
    assert "  cache -> audit (1 import)  BACKWARDS" in output
    assert "  proxy -> tests (1 import)  BACKWARDS" in output
    assert "  audit -> cache (2 imports)" in output
    # Relative imports resolve to modules; "~" marks imports that run later.
    assert "  cache.core -> audit.verdicts~, cache.keys" in output
    assert "  proxy.app -> audit.verdicts, proxy.other" in output
    # Top-level imports of each other form a cycle; the deferred import back does not count.
    assert (
        "import cycles at module top level: 1\n  cache.core -> cache.keys -> cache.core" in output
    )


def test_a_tree_that_keeps_the_layers_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean = {name: text for name, text in FAKE_TREE.items() if not name.startswith("proxy/")}
    clean["cache/core.py"] = "from .keys import Key\n"
    clean["audit/verdicts.py"] = "from cache.keys import Key\n"
    plant(tmp_path, clean)
    assert imports.main(["--root", str(tmp_path)]) == 0
    output = capsys.readouterr().out
    assert output.splitlines() == [
        "package imports (allowed: proxy -> audit -> cache, proxy -> cache):",
        "  audit -> cache (2 imports)",
        "",
        "ok: no backwards import in 5 modules",
    ]
