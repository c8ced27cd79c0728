"""``vetcache eval`` end to end with the real bundled embedder (all-MiniLM-L6-v2, no download),
through the argument parser wired as the CLI wires it.

On the project's own trap pairs (tests/fixtures/prompt_pairs.tsv) this embedder does not
separate the traps: every category there holds one class, so each cohort shows its margin
against the other class of the whole file (``vs_pool``), and the gate fails on the overall
margin (about 0.08 < 0.18), as it does on the larger fow_cache set (about 0.07)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from audit import evaluate
from proxy.cli import main
from tests.conftest import PROMPT_PAIRS

pytestmark = pytest.mark.integration

TRAPS = ("entity_swap", "negation", "number_date", "scope")
SAME = {"near_repeat": 30, "paraphrase": 52}
"""The label-1 cohorts of the fixture and their sizes (each trap cohort has 32 pairs)."""
COHORTS = ["entity_swap", "near_repeat", "negation", "number_date", "paraphrase", "scope"]


def vetcache_eval(*argv: str) -> int:
    status: int = main(["eval", *argv])
    return status


def table(output: str) -> dict[str, list[str]]:
    """Cohort -> the cells of its row in the printed table."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("cohort "))
    rows: dict[str, list[str]] = {}
    for line in lines[start + 1 :]:
        if line.startswith("hit@t:"):
            break
        cells = line.split()
        rows[cells[0]] = cells
    return rows


def test_cache_traps_fail_the_gate(capsys: pytest.CaptureFixture[str]) -> None:
    status = vetcache_eval("--pairs", str(PROMPT_PAIRS), "--min-margin", "0.18")
    output = capsys.readouterr().out
    print(output)  # the numbers, for the log of a failing run
    assert status == 1
    assert output.startswith(f"vetcache eval: 210 pairs from {PROMPT_PAIRS}; ")
    rows = table(output)
    assert list(rows) == [*COHORTS, evaluate.OVERALL]
    for trap in TRAPS:
        n_pos, n_neg, margin, vs_pool = rows[trap][1], rows[trap][2], rows[trap][5], rows[trap][6]
        assert (n_pos, n_neg, margin) == ("0", "32", "n/a")
        assert float(vs_pool) < 0.18  # negation and number/date sit near zero
    for cohort, size in SAME.items():
        assert rows[cohort][1:3] + rows[cohort][5:6] == [str(size), "0", "n/a"]
    assert float(rows["negation"][6]) < 0.1
    assert float(rows["number_date"][6]) < 0.1
    overall = rows[evaluate.OVERALL]
    assert overall[1:3] == ["82", "128"]
    assert 0.0 < float(overall[5]) < 0.18
    assert "note: margin n/a for 6 single-class cohort(s) (not gated)" in output
    assert f"FAIL {evaluate.OVERALL}: margin +" in output
    assert (
        output.splitlines()[-1] == "verdict: FAIL: 1 of 1 gated margin(s) below --min-margin 0.18"
    )


def test_gating_single_class_cohorts_fails_each_trap(capsys: pytest.CaptureFixture[str]) -> None:
    status = vetcache_eval("--pairs", str(PROMPT_PAIRS), "--gate-single-class")
    output = capsys.readouterr().out
    print(output)
    assert status == 1
    assert "note: margin n/a for 6 single-class cohort(s) (gated on vs_pool)" in output
    for trap in TRAPS:
        assert re.search(rf"^FAIL {trap}: vs_pool [+-]0\.\d{{3}} < 0\.18$", output, re.M)
    # Six single-class cohorts and the overall margin are gated; every trap is among the failures.
    assert re.fullmatch(
        r"verdict: FAIL: [5-7] of 7 gated margin\(s\) below --min-margin 0\.18",
        output.splitlines()[-1],
    )


def test_a_lower_bar_passes_the_same_file(capsys: pytest.CaptureFixture[str]) -> None:
    status = vetcache_eval("--pairs", str(PROMPT_PAIRS), "--min-margin", "0.05", "--format", "json")
    data = json.loads(capsys.readouterr().out)
    assert status == 0
    assert (data["source"], data["pairs"], data["cohort_depth"]) == (str(PROMPT_PAIRS), 210, 1)
    cohorts = {c["name"]: c for c in data["cohorts"]}
    assert list(cohorts) == COHORTS
    for name, stats in cohorts.items():
        label_one = name in SAME
        assert (stats["n_pos"], stats["n_neg"]) == ((SAME[name], 0) if label_one else (0, 32))
        assert stats["margin"] is None
        # Every hit of a trap cohort is a false hit, none of a same-answer cohort is.
        allowed = {None, 0.0} if label_one else {None, 1.0}
        assert {p["fp_share"] for p in stats["sweep"]} <= allowed
    overall = data["overall"]
    assert (overall["n_pos"], overall["n_neg"]) == (82, 128)
    assert 0.05 <= overall["margin"] < 0.18  # the margin that failed the default bar above
    # Why vetcache vets its hits: at 0.95 a good share of what similarity serves is still wrong.
    (at_095,) = [p for p in overall["sweep"] if p["threshold"] == 0.95]
    assert at_095["fp_share"] > 0.3
    assert data["gate"] == {
        "min_margin": 0.05,
        "gate_single_class": False,
        "failing": [],
        "single_class": COHORTS,
        "gated": 1,
        "missing": None,
        "passed": True,
        "exit_status": 0,
    }


TRIPLETS = [
    ("How do I reset my password?", "How can I reset my password?", "What is the capital of France?"),
    ("Cancel my subscription", "Please cancel my subscription", "Recommend a pasta recipe"),
    ("What time does the store open?", "When does the store open?", "How tall is Mount Everest?"),
    ("Translate hello into Spanish", "How do you say hello in Spanish?", "Explain how photosynthesis works"),
]  # fmt: skip


def test_jsonl_triplets_with_a_comfortable_margin_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "triplets.jsonl"
    path.write_text(
        "".join(
            json.dumps({"query": q, "positive": p, "negative": n, "category": f"support/{i}"})
            + "\n"
            for i, (q, p, n) in enumerate(TRIPLETS)
        ),
        encoding="utf-8",
    )
    status = vetcache_eval("--pairs", str(path), "--format", "json")
    data = json.loads(capsys.readouterr().out)
    assert status == 0
    assert data["fingerprint"].startswith("bundled:all-MiniLM-L6-v2:384:")
    (support,) = data["cohorts"]
    assert (support["name"], support["n_pos"], support["n_neg"]) == ("support", 4, 4)
    assert support["mean_pos"] > 0.7
    assert support["mean_neg"] < 0.3
    assert support["margin"] > 0.5
    assert data["gate"] == {
        "min_margin": 0.18,
        "gate_single_class": False,
        "failing": [],
        "single_class": [],
        "gated": 1,
        "missing": None,
        "passed": True,
        "exit_status": 0,
    }
