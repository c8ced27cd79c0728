"""``vetcache eval`` end to end with the real bundled embedder (all-MiniLM-L6-v2, no download),
through the argument parser wired as the CLI wires it.

On the fow_cache pairs this embedder does not separate the traps: every fow_cache category
holds one class, so each cohort shows its margin against the other class of the whole file
(``vs_pool``), and the gate fails on the overall margin (about 0.07 < 0.18)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from audit import evaluate

pytestmark = pytest.mark.integration

FOW_PAIRS = Path(__file__).resolve().parents[3] / "shared" / "data" / "fow_cache" / "pairs.tsv"
TRAPS = ("entity_swap", "negation", "number_date", "scope")


def vetcache_eval(*argv: str) -> int:
    root = argparse.ArgumentParser(prog="vetcache")
    sub = root.add_subparsers(dest="command", required=True)
    eval_parser = sub.add_parser("eval")
    evaluate.add_arguments(eval_parser)
    eval_parser.set_defaults(func=evaluate.main)
    args = root.parse_args(["eval", *argv])
    status: int = args.func(args)
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


def test_fow_cache_traps_fail_the_gate(capsys: pytest.CaptureFixture[str]) -> None:
    status = vetcache_eval("--pairs", str(FOW_PAIRS), "--min-margin", "0.18")
    output = capsys.readouterr().out
    print(output)  # the numbers, for the log of a failing run
    assert status == 1
    rows = table(output)
    assert list(rows) == [
        "entity_swap", "near_repeat", "negation", "number_date", "paraphrase", "scope",
        evaluate.OVERALL,
    ]  # fmt: skip
    for trap in TRAPS:
        n_pos, n_neg, margin, vs_pool = rows[trap][1], rows[trap][2], rows[trap][5], rows[trap][6]
        assert (n_pos, n_neg, margin) == ("0", "75", "n/a")
        assert float(vs_pool) < 0.18  # negation and number/date sit near zero
    assert float(rows["negation"][6]) < 0.1
    assert float(rows["number_date"][6]) < 0.1
    overall = rows[evaluate.OVERALL]
    assert overall[1:3] == ["300", "300"]
    assert 0.0 < float(overall[5]) < 0.18
    assert "note: margin n/a for 6 single-class cohort(s) (not gated)" in output
    assert f"FAIL {evaluate.OVERALL}: margin +" in output
    assert (
        output.splitlines()[-1] == "verdict: FAIL: 1 of 1 gated margin(s) below --min-margin 0.18"
    )


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
        "passed": True,
        "exit_status": 0,
    }
