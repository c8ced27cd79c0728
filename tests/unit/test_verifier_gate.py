"""The verifier release gate (``vetcache eval --verifier``): limits per gated cohort, no
regression against the model in force, small cohorts reported not gated; exit 0 / 1 / 2.
On fakes: a scorer that reads its scores from a table, similarities fixed per pair."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Sequence
from pathlib import Path

from audit.pairs import Pair
from audit.training.card import Counts, VerifierCard, write_card
from audit.training.gate import GateLimits, check
from audit.training.metrics import Metrics
from cache.settings import CacheSettings
from proxy.cli import build_parser
from proxy.commands.verifier_gate import run_gate

HEADER = "id\tfamily\tproduct\tkind\tlanguage\ttext_a\ttext_b\tlabel\n"


def metrics(pairs: int, positives: int, served: int, fps: int) -> Metrics:
    return Metrics(
        pairs=pairs, positives=positives, served=served, false_positives=fps,
        fp_share=fps / served if served else None,
        recall=(served - fps) / positives if positives else None,
        trap_pass=fps / (pairs - positives) if pairs > positives else None, auc=None,
    )  # fmt: skip


def test_a_gated_cohort_over_the_fp_limit_or_under_the_recall_floor_fails() -> None:
    found = check(
        {
            "all": metrics(100, 50, 40, 1),
            "kind=a": metrics(30, 15, 10, 2),  # FP share 0.2
            "kind=b": metrics(30, 15, 5, 0),  # recall 0.33
            "kind=c": metrics(10, 5, 5, 5),  # too small to gate
            "source=file": metrics(100, 50, 50, 25),  # reported only
        },
        GateLimits(),
    )
    assert found.gated == ["all", "kind=a", "kind=b"]
    assert found.failures == {
        "kind=a": ["FP share 0.200 > 0.050"],
        "kind=b": ["recall 0.333 < 0.500"],
    }
    assert found.exit_status == 1


def test_a_cohort_that_gets_worse_than_the_model_in_force_fails() -> None:
    in_force = {"all": metrics(100, 50, 50, 1), "kind=trap": metrics(40, 0, 2, 2)}
    candidate = {"all": metrics(100, 50, 40, 2), "kind=trap": metrics(40, 0, 6, 6)}
    found = check(candidate, GateLimits(max_fp=0.1, min_recall=0.5), in_force)
    assert found.failures == {
        "all": ["FP share 0.050 regressed from 0.020", "recall 0.760 regressed from 0.980"],
        "kind=trap": ["traps served 0.150 regressed from 0.050"],
    }
    assert check(in_force, GateLimits(), in_force).passed


# --- the command, on fakes -----------------------------------------------------------------


class TableScorer:
    def __init__(self, table: dict[str, float]) -> None:
        self.table = table

    def scores(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        return [self.table[b] for _, b in pairs]


async def similar(pairs: Sequence[Pair], settings: CacheSettings) -> tuple[list[float], str]:
    return [0.9 for _ in pairs], "fake:1"


def pair_file(path: Path) -> Path:
    rows = [HEADER]
    for n in range(30):
        rows.append(f"{n}a\tf{n}\tbilling\tparaphrase\ten\tq {n}\tgood {n}\t1\n")
        rows.append(f"{n}b\tf{n}\tbilling\tnegation\ten\tq {n}\tbad {n}\t0\n")
    path.write_text("".join(rows))
    return path


def folder(path: Path, good: float, bad: float) -> Path:
    path.mkdir()
    card = VerifierCard(
        name="v", version="1", threshold=0.5, floor=0.8, embedder="fake:1", target_fp=0.03,
        base_model="b", base_digest="d", weights_digest=str(good), seed=1, hyperparameters={},
        data_digest="d", counts=Counts(source={}, split={}, cohort={}, label={}), metrics={},
        command=[], created_at=time.time(), libraries={},
    )  # fmt: skip
    write_card(path, card)
    (path / "scores").write_text(f"{good} {bad}")
    return path


def load(path: Path) -> TableScorer:
    good, bad = map(float, (path / "scores").read_text().split())
    return TableScorer(
        {f"{kind} {n}": s for n in range(30) for kind, s in (("good", good), ("bad", bad))}
    )


async def gate(*argv: str) -> tuple[int, str, str]:
    args = build_parser().parse_args(["eval", *argv])
    out, err = io.StringIO(), io.StringIO()
    status = await run_gate(args, similarities=similar, out=out, err=err, load=load)
    return status, out.getvalue(), err.getvalue()


async def test_a_good_candidate_passes_and_a_flipped_one_is_refused_naming_cohorts(
    tmp_path: Path,
) -> None:
    pairs = pair_file(tmp_path / "p.tsv")
    good, flipped = folder(tmp_path / "good", 0.9, 0.1), folder(tmp_path / "flip", 0.1, 0.9)
    status, out, _ = await gate("--verifier", str(good), "--pairs", str(pairs))
    assert status == 0 and out.rstrip().endswith("passed")
    status, out, _ = await gate(
        "--verifier", str(flipped), "--against", str(good), "--pairs", str(pairs)
    )
    assert status == 1
    refusal = out.rstrip().splitlines()[-1]
    assert refusal.startswith("REFUSED")
    for cohort in ("all", "kind=paraphrase", "kind=negation", "product=billing"):
        assert cohort in refusal


async def test_the_floor_comes_from_the_card_unless_given(tmp_path: Path) -> None:
    pairs = pair_file(tmp_path / "p.tsv")
    good = folder(tmp_path / "good", 0.9, 0.1)
    status, out, _ = await gate("--verifier", str(good), "--pairs", str(pairs), "--floor", "0.95")
    assert status == 1 and "recall 0.000" in out  # similarity 0.9 < 0.95: nothing served


async def test_bad_input_is_exit_2(tmp_path: Path) -> None:
    pairs = pair_file(tmp_path / "p.tsv")
    status, _, err = await gate("--verifier", str(tmp_path / "none"), "--pairs", str(pairs))
    assert status == 2 and "cannot read" in err
    bad = tmp_path / "bad.tsv"
    bad.write_text(HEADER + "x\tf\tp\tk\ten\ta\tb\tmaybe\n")
    status, _, err = await gate("--verifier", str(tmp_path), "--pairs", str(bad))
    assert status == 2 and "bad.tsv:2: label must be 0 or 1" in err


async def test_the_json_form_names_the_failures(tmp_path: Path) -> None:
    pairs = pair_file(tmp_path / "p.tsv")
    flipped = folder(tmp_path / "flip", 0.1, 0.9)
    status, out, _ = await gate(
        "--verifier", str(flipped), "--pairs", str(pairs), "--format", "json"
    )
    document = json.loads(out)
    assert status == 1 and document["passed"] is False
    assert "kind=negation" not in document["failures"]  # traps alone: no limit without --against
    assert document["failures"]["kind=paraphrase"] == ["recall 0.000 < 0.500"]
    assert document["cohorts"]["all"]["fp_share"] == 1.0
