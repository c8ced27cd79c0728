"""``vetcache demo``, the README's main command, end to end (no services needed)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tiny_models import tiny_base

pytestmark = pytest.mark.integration


def test_demo_prints_its_report() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "demo", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    rows = {
        m.group(1): (int(m.group(2)), int(m.group(3)), int(m.group(4)), int(m.group(5)))
        for m in re.finditer(
            r"^(support|shop|travel|all)\s+(\d+)\s+(\d+)\s.*?(\d+)\s+(\d+)\s+[\d.]+%", out, re.M
        )
    }
    assert set(rows) == {"support", "shop", "travel", "all"}, out
    requests, hits, judged, false_hits = rows["all"]
    assert requests == 120 and 0 < hits < requests
    assert judged == hits  # every hit is audited in the demo
    assert false_hits > 0  # the traps are there to be caught
    caught = re.search(
        r"Asked again after the verdicts, (\d+) of (\d+) are no longer served the entry", out
    )
    assert caught is not None and caught.group(2) == str(false_hits)
    assert int(caught.group(1)) == false_hits  # every entry's bar was raised above its false hit
    again = re.search(r"(\d+) now miss; (\d+) are served the next nearest entry", out)
    assert again is not None and int(again.group(1)) + int(again.group(2)) == false_hits
    assert "p50" in out and "p99" in out and "recommended threshold" in out
    assert "WARNING" not in done.stderr  # the report is not buried in library chatter


def test_demo_rejects_bad_options() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "demo", "--threshold", "1.5"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1


def _learn_rows(out: str) -> dict[tuple[str, str], tuple[int, ...]]:
    """Pass 2's rows: (run, namespace) -> (requests, hits, semantic, false, refused)."""
    found = re.finditer(
        r"^(before|after)\s+(support|shop|travel|all)\s+(\d+)\s+(\d+)\s+\S+\s+(\d+)\s+(\d+)"
        r"\s+\S+\s+(\d+)$",
        out,
        re.M,
    )
    return {(m.group(1), m.group(2)): tuple(int(g) for g in m.groups()[2:]) for m in found}


def test_demo_learn_trains_gates_and_replays_new_prompts(tmp_path: Path) -> None:
    """The loop end to end with a tiny base (2 layers, 64 wide, one epoch): pass 1 audited,
    reviews recorded, a verifier trained from the ledger and gated, pass 2 before and after."""
    base = tiny_base(tmp_path / "tiny")
    done = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "demo", "--learn", "--no-progress",
         "--learn-base", str(base), "--learn-epochs", "1"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    first = re.findall(r"^(support|shop|travel|all)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", out, re.M)
    assert {row[0] for row in first} == {"support", "shop", "travel", "all"}, out
    reviewed = re.search(r"(\d+) judge verdicts reviewed: the (\d+) rows of the review queue", out)
    assert reviewed is not None and int(reviewed.group(1)) > int(reviewed.group(2)) > 0
    mined = re.search(r"Learn: (\d+) labelled pairs .*?(\d+) positives, (\d+) hard negatives", out)
    assert mined is not None and int(mined.group(2)) > 0 and int(mined.group(3)) > 0
    assert re.search(r"^Gate: `vetcache eval --verifier .*`: (passed|REFUSED)", out, re.M), out
    rows = _learn_rows(out)
    assert set(rows) == {(run, ns) for run in ("before", "after")
                         for ns in ("support", "shop", "travel", "all")}, out  # fmt: skip
    before, after = rows[("before", "all")], rows[("after", "all")]
    assert before[0] == after[0] == 168  # every prompt of workload-learn.json, in each run
    assert before[3] > 0  # the traps are there to be served
    assert after[3] <= before[3]  # the learned verifier served no more traps than none
    assert before[4] == 0 and after[4] > 0  # and it was asked: it refused candidates
    assert "WARNING" not in done.stderr


def test_demo_learn_rejects_bad_options(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "demo", "--learn", "--learn-epochs", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1
