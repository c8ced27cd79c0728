"""``vetcache eval`` without a model: the score math on hand-made similarities, the gate,
text and JSON output, and ``run`` with injected similarities (file parsing: test_pairs.py)."""

from __future__ import annotations

import argparse
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

import pytest

from audit.eval_report import key_thresholds, render_json, render_text, report_from_dict
from audit.evaluate import EXIT_CANNOT_GATE, OVERALL, CohortStats, Report, check_gate, score
from audit.pairs import Pair
from audit.tune import DEFAULT_THRESHOLDS
from cache import CacheSettings
from cache.errors import EmbedderError
from proxy.cli import build_parser
from proxy.commands import evaluate
from proxy.commands.evaluate import parse_thresholds


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def parser() -> argparse.ArgumentParser:
    """The CLI wiring as ``vetcache`` registers it."""
    return build_parser()


# --- the score math ------------------------------------------------------------------------

# cohort a: positives 0.90 0.80, negatives 0.60 0.50 -> margin 0.30
# cohort b: positive 0.95, negatives 0.90 0.85 -> margin 0.075
# cohort c: negative 0.70 only -> no margin; against all positives (mean 0.8833): 0.1833
HAND = [
    ("a", 1, 0.90), ("a", 1, 0.80), ("a", 0, 0.60), ("a", 0, 0.50),
    ("b", 1, 0.95), ("b", 0, 0.90), ("b", 0, 0.85),
    ("c", 0, 0.70),
]  # fmt: skip


def hand_report(thresholds: Sequence[float] = (0.80, 0.85, 0.90, 0.95)) -> Report:
    pairs = [
        Pair(f"a{i}", f"b{i}", label, cohort, i + 2) for i, (cohort, label, _) in enumerate(HAND)
    ]
    return score(pairs, [similarity for _, _, similarity in HAND], thresholds=thresholds)


def stats(report: Report, name: str) -> CohortStats:
    return next(s for s in (*report.cohorts, report.overall) if s.name == name)


def test_means_and_margins_per_cohort_and_overall() -> None:
    report = hand_report()
    assert [s.name for s in report.cohorts] == ["a", "b", "c"]
    a, b, c, overall = (stats(report, n) for n in ("a", "b", "c", OVERALL))
    assert (a.n_pos, a.n_neg) == (2, 2)
    assert a.mean_pos == pytest.approx(0.85)
    assert a.mean_neg == pytest.approx(0.55)
    assert a.margin == pytest.approx(0.30)
    assert b.margin == pytest.approx(0.95 - 0.875)
    assert a.pooled_margin is None
    assert (c.n_pos, c.n_neg, c.mean_pos, c.margin) == (0, 1, None, None)
    assert c.single_class
    assert c.pooled_margin == pytest.approx((0.90 + 0.80 + 0.95) / 3 - 0.70)
    assert (overall.n_pos, overall.n_neg) == (3, 5)
    assert overall.margin == pytest.approx((0.90 + 0.80 + 0.95) / 3 - 3.55 / 5)


def test_hit_rate_fp_share_and_recall_at_a_threshold() -> None:
    report = hand_report()
    at_085 = {s.name: s.sweep[1] for s in (*report.cohorts, report.overall)}
    assert {point.threshold for point in at_085.values()} == {0.85}
    # overall: hits 0.90 0.95 (positives) and 0.90 0.85 (negatives; >= is a hit) of 8 pairs
    overall = at_085[OVERALL]
    assert (overall.hits, overall.negative_hits) == (4, 2)
    assert overall.hit_rate == pytest.approx(4 / 8)
    assert overall.fp_share == pytest.approx(2 / 4)
    assert overall.recall == pytest.approx(2 / 3)
    assert (at_085["a"].hit_rate, at_085["a"].fp_share, at_085["a"].recall) == (0.25, 0.0, 0.5)
    assert at_085["b"].hit_rate == 1.0
    assert at_085["b"].fp_share == pytest.approx(2 / 3)
    # nothing hits in c: no FP share; no positives: no recall
    assert (at_085["c"].hits, at_085["c"].hit_rate, at_085["c"].fp_share, at_085["c"].recall) == (
        0,
        0.0,
        None,
        None,
    )


def test_the_default_sweep_is_tunes_grid() -> None:
    """eval and tune sweep one grid: 0.70 .. 0.99 in steps of 0.01."""
    report = hand_report(DEFAULT_THRESHOLDS)
    assert len(report.thresholds) == 30
    assert report.thresholds[:3] == (0.70, 0.71, 0.72)
    assert report.thresholds[-1] == 0.99
    assert 0.90 in report.thresholds
    assert 0.95 in report.thresholds
    assert [p.threshold for p in report.overall.sweep] == list(report.thresholds)


def test_score_needs_one_similarity_per_pair() -> None:
    with pytest.raises(ValueError, match="2 pairs but 1 similarities"):
        score([Pair("a", "b", 1, "x", 2), Pair("a", "c", 0, "x", 3)], [0.5])


# --- the gate ------------------------------------------------------------------------------


def test_margins_below_the_minimum_fail_and_single_class_cohorts_do_not() -> None:
    gate = check_gate(hand_report(), min_margin=0.18)
    assert gate.failing == ("b", OVERALL)  # 0.075 and 0.173; a (0.30) passes
    assert gate.single_class == ("c",)  # its 0.183 is not gated
    assert gate.gated == 3
    assert (gate.passed, gate.exit_status) == (False, 1)


def test_single_class_cohorts_never_fail_by_default() -> None:
    gate = check_gate(hand_report(), min_margin=0.05)
    assert (gate.failing, gate.single_class, gate.exit_status) == ((), ("c",), 0)


def test_gate_single_class_uses_the_pooled_margin() -> None:
    gate = check_gate(hand_report(), min_margin=0.19, gate_single_class=True)
    assert gate.failing == ("b", "c", OVERALL)
    assert check_gate(hand_report(), min_margin=0.07, gate_single_class=True).exit_status == 0


def test_a_margin_equal_to_the_minimum_passes() -> None:
    pairs = [Pair("a", "b", 1, "x", 2), Pair("a", "c", 0, "x", 3)]
    report = score(pairs, [0.98, 0.80])
    assert report.overall.margin is not None
    assert report.overall.margin < 0.18  # 0.17999999999999994 in floating point
    assert check_gate(report, min_margin=0.18).exit_status == 0


def test_a_file_with_one_class_cannot_be_gated_and_fails_with_its_own_status() -> None:
    """Issue 18: the hard-negative export (label 0 only) passed "vacuously" with exit 0."""
    negatives = [Pair("a", f"b{i}", 0, "negation" if i % 2 else "number", i) for i in range(6)]
    report = score(negatives, [0.5] * 6)
    gate = check_gate(report, gate_single_class=True)
    assert (gate.gated, gate.missing, gate.passed) == (0, "positives", False)
    assert gate.exit_status == EXIT_CANNOT_GATE == 3
    text = render_text(report, gate)
    assert "verdict: CANNOT GATE: no positives (label-1 pairs)" in text
    assert "PASS" not in text
    positives = score([Pair("a", "b", 1, "x", 2)], [0.5])
    assert check_gate(positives).missing == "negatives"
    assert check_gate(positives).exit_status == 3


# --- output --------------------------------------------------------------------------------


def test_text_table() -> None:
    report = hand_report()
    text = render_text(report, check_gate(report), title="eval of hand.tsv")
    lines = text.splitlines()
    assert lines[0] == "eval of hand.tsv"
    assert lines[1].split() == [
        "cohort", "n_pos", "n_neg", "mean_pos", "mean_neg", "margin", "vs_pool",
        "hit@0.80", "fp@0.80", "hit@0.85", "fp@0.85", "hit@0.90", "fp@0.90", "hit@0.95", "fp@0.95",
    ]  # fmt: skip
    assert lines[2].split()[:7] == ["a", "2", "2", "0.850", "0.550", "+0.300", "-"]
    assert lines[4].split()[:7] == ["c", "0", "1", "n/a", "0.700", "n/a", "+0.183"]
    assert lines[5].split()[:6] == [OVERALL, "3", "5", "0.883", "0.710", "+0.173"]
    assert lines[5].split()[9:11] == ["50.0%", "50.0%"]  # hit rate, FP share at 0.85
    assert lines[4].split()[9:11] == ["0.0%", "-"]  # no hits in c at 0.85
    assert "note: margin n/a for 1 single-class cohort(s) (not gated): c" in lines
    assert "FAIL b: margin +0.075 < 0.18" in lines
    assert f"FAIL {OVERALL}: margin +0.173 < 0.18" in lines
    assert lines[-1] == "verdict: FAIL: 2 of 3 gated margin(s) below --min-margin 0.18"


def test_one_cohort_has_no_separate_overall_row() -> None:
    pairs = [Pair("a", "b", 1, "all", 2), Pair("a", "c", 0, "all", 3)]
    report = score(pairs, [0.9, 0.5], thresholds=(0.6, 0.875))
    gate = check_gate(report)
    text = render_text(report, gate)
    assert OVERALL not in text
    assert "hit@0.60" in text
    assert "hit@0.875" in text
    assert gate.gated == 1
    assert text.splitlines()[-1] == "verdict: PASS: all 1 gated margin(s) >= 0.18"


def test_json_output_round_trips() -> None:
    report = hand_report(DEFAULT_THRESHOLDS)
    gate = check_gate(report, min_margin=0.18)
    data = json.loads(render_json(report, gate, source="hand.tsv", model="m"))
    assert report_from_dict(data) == report
    assert (data["source"], data["model"]) == ("hand.tsv", "m")
    assert data["gate"] == {
        "min_margin": 0.18,
        "gate_single_class": False,
        "failing": ["b", OVERALL],
        "single_class": ["c"],
        "gated": 3,
        "missing": None,
        "passed": False,
        "exit_status": 1,
    }
    c = next(cohort for cohort in data["cohorts"] if cohort["name"] == "c")
    assert (c["margin"], c["mean_pos"]) == (None, None)
    point = next(p for p in data["overall"]["sweep"] if p["threshold"] == 0.85)
    assert (point["hit_rate"], point["fp_share"]) == (0.5, 0.5)


@pytest.mark.parametrize(
    ("sweep", "expected"),
    [
        (DEFAULT_THRESHOLDS, (0.80, 0.85, 0.90, 0.95)),
        ((0.5, 0.7, 0.9), (0.5, 0.7, 0.9)),
        ((0.5, 0.6, 0.7, 0.72, 0.74, 0.76, 0.78), (0.5, 0.7, 0.74, 0.78)),
        ((0.5, 0.6, 0.7, 0.9, 0.91), (0.9,)),
    ],
)
def test_key_thresholds(sweep: tuple[float, ...], expected: tuple[float, ...]) -> None:
    assert key_thresholds(sweep) == expected


# --- arguments and run ---------------------------------------------------------------------


def test_arguments_and_their_defaults() -> None:
    args = parser().parse_args(["eval", "--pairs", "p.tsv"])
    assert args.pairs == Path("p.tsv")
    assert args.model == "bundled:all-MiniLM-L6-v2"
    assert args.min_margin == 0.18
    assert args.thresholds == DEFAULT_THRESHOLDS
    assert (args.cohort_depth, args.format, args.gate_single_class) == (1, "text", False)
    assert args.run is evaluate.run
    args = parser().parse_args(
        ["eval", "--pairs", "p", "--thresholds", "0.9, 0.8,0.9", "--cohort-depth", "0"]
    )
    assert (args.thresholds, args.cohort_depth) == ((0.8, 0.9), 0)


@pytest.mark.parametrize(
    "argv",
    [
        ["--thresholds", "0.8,high"],
        ["--thresholds", "1.5"],
        ["--thresholds", ","],
        ["--min-margin", "nan"],
        ["--cohort-depth", "-1"],
        ["--format", "xml"],
    ],
)
def test_bad_usage_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(["eval", "--pairs", "p.tsv", *argv])
    assert exited.value.code == 2
    assert "error" in capsys.readouterr().err


def test_parse_thresholds() -> None:
    assert parse_thresholds("0.95,0.9") == (0.9, 0.95)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_thresholds("-2")


async def fake_similarities(
    pairs: Sequence[Pair], embedder: CacheSettings
) -> tuple[list[float], str]:
    """Positives at 0.9, negatives at 0.9 in the "trap" cohort and 0.4 elsewhere."""
    values = [0.9 if p.label == 1 or p.cohort == "trap" else 0.4 for p in pairs]
    return values, f"fake:{embedder.embedding_model}:{embedder.embedding_backend}"


async def test_run_passes_with_a_comfortable_margin(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.jsonl",
        '{"query": "q", "positive": "p", "negative": "n", "category": "easy/1"}\n'
        '{"query": "r", "positive": "s", "negative": "t", "category": "easy/2"}\n',
    )
    args = parser().parse_args(["eval", "--pairs", str(path), "--model", "m"])
    out, err = io.StringIO(), io.StringIO()
    assert await evaluate.evaluate(args, similarities=fake_similarities, out=out, err=err) == 0
    assert "(fake:m:onnx-int8)" in out.getvalue()  # the gateway's default backend
    args = parser().parse_args(["eval", "--pairs", str(path), "--backend", "torch"])
    assert await evaluate.evaluate(args, similarities=fake_similarities, out=out, err=err) == 0
    assert ":torch)" in out.getvalue()
    assert "verdict: PASS" in out.getvalue()
    assert err.getvalue() == ""


async def test_run_fails_a_small_margin_and_prints_json(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.tsv",
        "text_a\ttext_b\tlabel\tcategory\n"
        "a\tb\t1\teasy\na\tc\t0\teasy\nd\te\t1\ttrap\nd\tf\t0\ttrap\n",
    )
    args = parser().parse_args(["eval", "--pairs", str(path), "--format", "json"])
    out = io.StringIO()
    assert await evaluate.evaluate(args, similarities=fake_similarities, out=out) == 1
    data = json.loads(out.getvalue())
    assert data["gate"]["failing"] == ["trap"]
    assert (data["source"], data["pairs"], data["cohort_depth"]) == (str(path), 4, 1)
    margins = {c["name"]: c["margin"] for c in data["cohorts"]}
    assert margins["trap"] == 0.0
    assert math.isclose(margins["easy"], 0.5)


async def test_run_exits_3_on_the_hard_negative_export(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "hard_negatives.tsv",
        "text_a\ttext_b\tlabel\tcategory\n" + "a\tb\t0\tshop\nc\td\t0\tbank\n",
    )
    args = parser().parse_args(["eval", "--pairs", str(path), "--format", "json"])
    out = io.StringIO()
    assert await evaluate.evaluate(args, similarities=fake_similarities, out=out) == 3
    gate = json.loads(out.getvalue())["gate"]
    assert (gate["passed"], gate["exit_status"], gate["missing"]) == (False, 3, "positives")


def test_eval_help_lists_the_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["eval", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "3 cannot gate: the file has no positives or no negatives" in text


async def test_run_reports_at_most_20_bad_rows_and_computes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.tsv", "text_a\ttext_b\tlabel\n" + "a\tb\tmaybe\n" * 25)
    args = parser().parse_args(["eval", "--pairs", str(path)])
    called: list[int] = []

    async def must_not_run(pairs: Sequence[Pair], _: CacheSettings) -> tuple[list[float], str]:
        called.append(len(pairs))
        return [], ""

    out, err = io.StringIO(), io.StringIO()
    assert await evaluate.evaluate(args, similarities=must_not_run, out=out, err=err) == 2
    lines = err.getvalue().splitlines()
    assert lines[0] == f'{path}:2: label must be 0 or 1, found "maybe"'
    assert lines[19] == f'{path}:21: label must be 0 or 1, found "maybe"'
    assert lines[20:] == ["... and 5 more", "vetcache: eval: bad input, nothing computed"]
    assert (called, out.getvalue()) == ([], "")


async def test_run_exits_2_when_the_model_cannot_load(tmp_path: Path) -> None:
    path = write(tmp_path, "p.tsv", "text_a\ttext_b\tlabel\na\tb\t1\n")
    args = parser().parse_args(["eval", "--pairs", str(path)])

    async def broken(pairs: Sequence[Pair], _: CacheSettings) -> tuple[list[float], str]:
        raise EmbedderError("cannot load embedding model 'x'")

    err = io.StringIO()
    assert await evaluate.evaluate(args, similarities=broken, err=err) == 2
    assert err.getvalue() == "vetcache: eval: cannot load embedding model 'x'\n"
