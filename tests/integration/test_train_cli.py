"""``vetcache train`` and ``vetcache eval --verifier`` as a user runs them, on a tiny model
trained in seconds: the folder and its card, the recorded command rebuilding the same
weights, bad input writing nothing, and the gate refusing a candidate trained on flipped
labels (exit 1, naming the cohorts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.cli import main
from tests.conftest import ROOT
from tests.tiny_models import THINGS, tiny_base, write_pairs

pytestmark = pytest.mark.integration

TINY = ["--layers", "2", "--epochs", "3", "--lr", "1e-3", "--batch-size", "16", "--floor", "0"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxy.cli", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny base model, training files (true and flipped labels), a separate evaluation
    file (other objects), and a config (no auth, torch embedder)."""
    root = tmp_path_factory.mktemp("train")
    tiny_base(root / "tiny")
    write_pairs(root / "train.tsv", seed=1, things=THINGS[:8])
    write_pairs(root / "flipped.tsv", seed=1, things=THINGS[:8], flip=True)
    write_pairs(root / "eval.tsv", seed=2, things=THINGS[8:])
    (root / "config.yaml").write_text(
        "auth:\n  enabled: false\ncache:\n  embedding_backend: torch\n"
    )
    return root


def train(work: Path, pairs: str, out: str) -> subprocess.CompletedProcess[str]:
    return run(
        "train", "--config", str(work / "config.yaml"), "--pairs", str(work / pairs),
        "--out", str(work / out), "--base", str(work / "tiny"), *TINY,
    )  # fmt: skip


def test_train_writes_a_model_and_card_and_the_gate_refuses_a_flipped_candidate(
    work: Path,
) -> None:
    good = train(work, "train.tsv", "good")
    assert good.returncode == 0, good.stderr
    assert "validation (" in good.stdout and "kind=negation" in good.stdout
    card = json.loads((work / "good" / "vetcache-verifier.json").read_text())
    assert card["created_by"] == "vetcache train" and card["seed"] == 13
    assert 0 < card["threshold"] < 1 and card["floor"] == 0.0
    assert card["counts"]["source"] == {"file": 288}
    assert set(card["counts"]["split"]) == {"train", "validation", "test"}
    assert card["metrics"]["test"]["all"]["auc"] > 0.9
    assert card["hyperparameters"]["layers"] == 2 and card["libraries"]["torch"]
    assert (work / "good" / "model.safetensors").exists()
    assert train(work, "flipped.tsv", "flipped").returncode == 0

    evaluate = ["eval", "--pairs", str(work / "eval.tsv"), "--backend", "torch"]
    passed = run(*evaluate, "--verifier", str(work / "good"))
    assert passed.returncode == 0, passed.stdout + passed.stderr
    refused = run(*evaluate, "--verifier", str(work / "flipped"), "--against", str(work / "good"))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    verdict = refused.stdout.rstrip().splitlines()[-1]
    assert verdict.startswith("REFUSED")
    for cohort in ("all", "kind=politeness", "product=billing", "product=shipping"):
        assert cohort in verdict


def test_the_recorded_command_rebuilds_the_same_weights(work: Path) -> None:
    first = work / "good" / "vetcache-verifier.json"
    if not first.exists():
        assert train(work, "train.tsv", "good").returncode == 0
    card = json.loads(first.read_text())
    command = card["command"]
    assert command[:2] == ["vetcache", "train"]
    again = list(command[1:])
    again[again.index("--out") + 1] = str(work / "again")
    assert main(again) == 0
    rebuilt = json.loads((work / "again" / "vetcache-verifier.json").read_text())
    assert rebuilt["weights_digest"] == card["weights_digest"]
    assert rebuilt["data_digest"] == card["data_digest"]
    assert rebuilt["threshold"] == card["threshold"]


def test_bad_input_is_one_line_exit_2_and_writes_nothing(work: Path) -> None:
    bad = work / "bad.tsv"
    bad.write_text(
        "id\tfamily\tproduct\tkind\tlanguage\ttext_a\ttext_b\tlabel\nx\tf\tp\tk\ten\ta\tb\t7\n"
    )
    result = train(work, "bad.tsv", "nothing")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("vetcache: train: ")
    assert "bad.tsv:2: label must be 0 or 1" in result.stderr
    one_label = work / "positives.tsv"
    one_label.write_text(
        "".join(line for line in (work / "train.tsv").read_text().splitlines(keepends=True)
                if not line.endswith("\t0\n"))
    )  # fmt: skip
    result = train(work, "positives.tsv", "nothing")
    assert result.returncode == 2 and "no pairs labelled 0" in result.stderr
    assert not (work / "nothing").exists()
    assert not [p for p in work.iterdir() if p.name.startswith(".nothing")]
    (work / "taken").mkdir()
    result = train(work, "train.tsv", "taken")
    assert result.returncode == 2 and "already exists" in result.stderr


def test_the_default_base_is_the_bundled_model_read_as_a_cross_encoder_offline() -> None:
    from torch import nn

    from audit.training.hyperparameters import Hyperparameters
    from audit.training.scorer import CrossEncoderScorer
    from audit.training.trainer import load_base

    defaults = Hyperparameters()
    assert defaults.base == "bundled:all-MiniLM-L6-v2"
    model = load_base(defaults.model_copy(update={"layers": 3}))
    network = model.model
    assert network is not None and network.config.num_hidden_layers == 3
    blocks = network.base_model.get_submodule("encoder.layer")
    assert isinstance(blocks, nn.ModuleList) and len(blocks) == 3
    (score,) = CrossEncoderScorer(model).scores([("Cancel my order", "Do not cancel my order")])
    assert 0.0 < score < 1.0
