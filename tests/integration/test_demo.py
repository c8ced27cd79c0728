"""``vetcache demo``, the README's main command, end to end (no services needed)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

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
