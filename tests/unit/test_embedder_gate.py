"""The embedder's release path without a model: margins per cohort, the gate (0.18 and no
regression against the model in force), the triplets MNRL trains on, batches without a
repeated text, and ``vetcache eval --against`` on fake similarities."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from datasets import Dataset

from audit.pairs import Pair
from audit.training.batches import UniqueLengthGroupedBatchSampler
from audit.training.embedder_gate import EmbedderGateLimits, check
from audit.training.embedder_metrics import EmbedderMetrics, by_cohort
from audit.training.embedder_trainer import labelled, triplets
from audit.training.records import Cohorts, Provenance, TrainingPair
from cache.settings import CacheSettings
from proxy.cli import build_parser
from proxy.commands.evaluate import evaluate
from proxy.commands.train import command_line

HEADER = "id\tfamily\tproduct\tkind\tlanguage\ttext_a\ttext_b\tlabel\n"


def pair(a: str, b: str, label: int, kind: str = "k", product: str = "p") -> TrainingPair:
    return TrainingPair(
        text_a=a, text_b=b, label=label, family="f",
        cohorts=Cohorts(product=product, kind=kind), provenance=Provenance(source="file", ref="x"),
    )  # fmt: skip


def margins(pos: float, neg: float, pairs: int = 40) -> EmbedderMetrics:
    half = pairs // 2
    return EmbedderMetrics(
        pairs=pairs, positives=half, served=half, false_positives=0, fp_share=0.0, recall=1.0,
        trap_pass=0.0, auc=None, mean_pos=pos, mean_neg=neg, margin=pos - neg,
    )  # fmt: skip


def test_margin_fp_share_and_recall_per_cohort_at_the_threshold() -> None:
    pairs = [
        pair("a", "b", 1, "paraphrase"), pair("a", "c", 1, "paraphrase"),
        pair("a", "d", 0, "negation"), pair("a", "e", 0, "negation"),
    ]  # fmt: skip
    found = by_cohort(pairs, [0.96, 0.90, 0.97, 0.70], threshold=0.95)
    overall = found["all"]
    assert overall.mean_pos is not None and abs(overall.mean_pos - 0.93) < 1e-9
    assert overall.margin is not None and abs(overall.margin - 0.095) < 1e-9
    assert overall.served == 2 and overall.fp_share == 0.5 and overall.recall == 0.5
    assert found["kind=negation"].margin is None and found["kind=negation"].trap_pass == 0.5
    assert list(found) == sorted(found)


def test_the_gate_refuses_a_margin_under_0_18_and_a_regression_naming_cohorts() -> None:
    in_force = {"all": margins(0.9, 0.5), "kind=a": margins(0.9, 0.6)}
    candidate = {
        "all": margins(0.9, 0.75),  # margin 0.15 < 0.18
        "kind=a": margins(0.9, 0.65),  # 0.25: above 0.18 but 0.05 worse than in force
        "kind=small": margins(0.9, 0.9, pairs=10),  # too small to gate
        "source=file": margins(0.9, 0.9),  # reported only
    }
    found = check(candidate, EmbedderGateLimits(), in_force)
    assert found.gated == ["all", "kind=a"]
    assert found.failures["all"][0] == "margin 0.150 < 0.180"
    assert found.failures["kind=a"] == ["margin 0.250 regressed from 0.300"]
    assert found.exit_status == 1
    assert check(in_force, EmbedderGateLimits(), in_force).passed
    assert check(candidate, EmbedderGateLimits(min_margin=0.1)).failures == {}


def test_triplets_take_hard_negatives_of_the_answer_group_in_both_orders() -> None:
    pairs = [
        pair("reset my password", "reset my password please", 1),
        pair("reset my password please", "how to reset my password", 1),
        pair("reset my password", "reset my username", 0),
        pair("track my parcel", "where is my parcel", 1),  # a group without a trap
    ]
    rows = triplets(pairs)
    assert len(rows["anchor"]) == 6  # three positives, both orders
    first = list(zip(rows["anchor"], rows["positive"], rows["negative"], strict=True))[:4]
    assert first[0] == ("reset my password", "reset my password please", "reset my username")
    assert first[1][:2] == ("reset my password please", "reset my password")
    assert all(negative == "reset my username" for *_, negative in first)
    assert rows["negative"][4] == "reset my username"  # borrowed from the next group
    assert labelled(pairs)["label"] == [1.0, 1.0, 0.0, 1.0]


def test_unique_batches_never_repeat_a_text_and_cover_every_row_once() -> None:
    anchors = [f"prompt {n % 5}" for n in range(40)]
    data = Dataset.from_dict(
        {"anchor": anchors, "positive": [f"p{n}" for n in range(40)],
         "negative": [f"n{n % 7}" for n in range(40)]}
    )  # fmt: skip
    sampler = UniqueLengthGroupedBatchSampler(data, batch_size=4, drop_last=False, seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    assert sorted(i for b in batches for i in b) == list(range(40))
    for batch in batches:
        texts = [data[i][c] for i in batch for c in ("anchor", "positive", "negative")]
        assert len(texts) == len(set(texts))
    assert list(UniqueLengthGroupedBatchSampler(data, 4, False, seed=3)) == batches


def test_the_recorded_embedder_command_names_the_loss_and_threshold() -> None:
    args = build_parser().parse_args(
        ["train", "--embedder", "--out", "m", "--pairs", "a.tsv", "--loss", "cosent",
         "--threshold", "0.9", "--epochs", "1", "--seed", "5"]
    )  # fmt: skip
    line = command_line(args)
    assert line[:5] == ["vetcache", "train", "--embedder", "--loss", "cosent"]
    assert line[-2:] == ["--threshold", "0.9"] and "--target-fp" not in line
    assert line[line.index("--seed") + 1] == "5"


# --- vetcache eval --against, on fake similarities -------------------------------------------


async def by_model(pairs: Sequence[Pair], settings: CacheSettings) -> tuple[list[float], str]:
    """``good`` separates the classes, ``bad`` barely does."""
    model = settings.embedding_model
    pos, neg = (0.95, 0.5) if model == "good" else (0.8, 0.7)
    return [pos if p.label else neg for p in pairs], f"{model}:1:x:onnx-int8"


def pair_file(path: Path) -> Path:
    rows = [HEADER]
    for n in range(30):
        rows.append(f"{n}a\tf{n}\tbilling\tparaphrase\ten\tq {n}\tgood {n}\t1\n")
        rows.append(f"{n}b\tf{n}\tbilling\tnegation\ten\tq {n}\tbad {n}\t0\n")
    path.write_text("".join(rows))
    return path


async def eval_(*argv: str) -> tuple[int, str, str]:
    args = build_parser().parse_args(["eval", *argv])
    out, err = io.StringIO(), io.StringIO()
    status = await evaluate(args, similarities=by_model, out=out, err=err)
    return status, out.getvalue(), err.getvalue()


async def test_eval_against_gates_the_candidate_embedder(tmp_path: Path) -> None:
    pairs = str(pair_file(tmp_path / "p.tsv"))
    status, out, _ = await eval_("--model", "good", "--against", "bad", "--pairs", pairs)
    assert status == 0 and out.rstrip().endswith("passed")
    assert "candidate good:1:x:onnx-int8; in force bad:1:x:onnx-int8" in out
    status, out, _ = await eval_("--model", "bad", "--against", "good", "--pairs", pairs)
    assert status == 1
    refusal = out.rstrip().splitlines()[-1]
    for cohort in ("all", "product=billing", "kind=paraphrase", "language=en"):
        assert cohort in refusal
    assert "margin 0.100 < 0.180" in out and "margin 0.100 regressed from 0.450" in out


async def test_eval_gate_usage_is_exit_2(tmp_path: Path) -> None:
    pairs = str(pair_file(tmp_path / "p.tsv"))
    status, _, err = await eval_("--ledger", "--pairs", pairs)
    assert status == 2 and "not both" in err
    status, _, err = await eval_("--model", "good")
    assert status == 2 and "--pairs FILE is required (or --ledger)" in err
    status, _, err = await eval_("--ledger", "--model", "good")
    assert status == 2 and "--ledger needs redis_url" in err
    labels = tmp_path / "one.tsv"
    labels.write_text(HEADER + "1\tf\tp\tk\ten\ta\tb\t1\n")
    status, _, err = await eval_("--model", "good", "--against", "bad", "--pairs", str(labels))
    assert status == 3 and "no margin to gate" in err
