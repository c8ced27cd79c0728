"""The default verifier and how training reads pairs: ``cache.verifier.model: default``
names the model ``vetcache train --default`` builds (a clear error until it is built), the
command refuses other pairs beside the shipped ones and says so when the model is there,
and training batches group pairs of similar length without losing or repeating one."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from datasets import Dataset

from audit.training.batches import LengthGroupedBatchSampler
from audit.training.files import load_pair_file, shipped_pair_files
from cache.errors import VerifierError
from cache.verifier_model import CARD, default_folder, resolve_folder
from proxy.cli import main


def test_default_names_the_folder_train_default_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VETCACHE_VERIFIER_DIR", str(tmp_path))
    with pytest.raises(VerifierError, match=r"vetcache train --default"):
        resolve_folder("default")
    default_folder().mkdir()
    (default_folder() / CARD).write_text(json.dumps({"name": "vetcache-default", "threshold": 0.9}))
    assert resolve_folder("default") == tmp_path / "default"
    assert resolve_folder(tmp_path / "mine") == tmp_path / "mine"  # a path is a path


def test_train_default_takes_no_other_pairs_and_is_done_once_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VETCACHE_VERIFIER_DIR", str(tmp_path))
    pairs = tmp_path / "p.tsv"
    pairs.write_text("text_a\ttext_b\tlabel\na\tb\t1\n")
    assert main(["train", "--default", "--pairs", str(pairs)]) == 2
    assert "shipped pairs only" in capsys.readouterr().err
    assert not default_folder().exists()
    default_folder().mkdir()
    (default_folder() / CARD).write_text(json.dumps({"name": "vetcache-default", "threshold": 0.9}))
    assert main(["train", "--default"]) == 0
    assert "the default verifier is built" in capsys.readouterr().out


def test_the_shipped_pairs_load_with_families_and_both_labels() -> None:
    files = shipped_pair_files()
    assert [f.name for f in files] == ["train-a.tsv", "train-b.tsv"]
    pairs = [pair for path in files for pair in load_pair_file(path)]
    assert len(pairs) > 3000
    assert {pair.label for pair in pairs} == {0, 1}
    assert len({pair.family for pair in pairs}) > 400
    assert {pair.cohorts.length for pair in pairs} == {"short", "long"}


def _dataset(count: int) -> Dataset:
    rng = random.Random(3)
    firsts = ["x" * rng.choice([10, 20, 40, 400, 800]) for _ in range(count)]
    return Dataset.from_dict(
        {"sentence1": firsts, "sentence2": ["y"] * count, "label": [1.0] * count}
    )


def test_length_grouped_batches_cover_every_pair_once_per_epoch_in_tight_batches() -> None:
    data = _dataset(1000)
    sampler = LengthGroupedBatchSampler(data, batch_size=32, drop_last=False, seed=5)
    epochs = []
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == 32
        assert sorted(i for batch in batches for i in batch) == list(range(1000))
        epochs.append(batches)
    assert epochs[0] != epochs[1]  # reshuffled each epoch
    sampler.set_epoch(0)
    assert list(sampler) == epochs[0]  # and reproducible
    lengths = sampler.lengths
    padded = sum(len(b) * max(lengths[i] for i in b) for b in epochs[0])
    assert padded < 1.2 * sum(lengths)  # random batches of 32 pad to ~2.5x here
