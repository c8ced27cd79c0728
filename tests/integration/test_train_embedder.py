"""``vetcache train --embedder`` and the embedder gate (``vetcache eval --against`` /
``--ledger``) as a user runs them, on a tiny embedder trained in seconds: the folder the
gateway loads and its card, the ONNX int8 export made at once (the card names the
fingerprint the gateway serves, not the base's), the recorded command rebuilding the same
weights, bad input writing nothing, and the gate refusing a candidate trained on flipped
labels (exit 1, naming its cohorts), from a file and straight from the audit ledger."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from audit import build_queue_and_ledger
from audit.schema import AuditJob, Verdict
from audit.settings import AuditSettings
from cache import CacheSettings, build_embedder
from proxy.cli import main
from tests.conftest import ROOT
from tests.tiny_models import THINGS, VERBS, tiny_embedder, write_pairs

pytestmark = pytest.mark.integration

TINY = [
    "--loss",
    "mnrl",
    "--epochs",
    "3",
    "--lr",
    "1e-3",
    "--batch-size",
    "16",
    "--threshold",
    "0.8",
]
COHORTS = ("all", "kind=politeness", "product=billing", "product=shipping")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxy.cli", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny base embedder, training files (true and flipped labels), an evaluation file
    (other objects), a config naming the ONNX folder, and the good and flipped models."""
    root = tmp_path_factory.mktemp("train-embedder")
    tiny_embedder(root / "tiny")
    write_pairs(root / "train.tsv", seed=1, things=THINGS[:8])
    write_pairs(root / "flipped.tsv", seed=1, things=THINGS[:8], flip=True)
    write_pairs(root / "eval.tsv", seed=2, things=THINGS[8:])
    (root / "config.yaml").write_text(
        f"auth:\n  enabled: false\ncache:\n  onnx_dir: {root / 'onnx'}\n"
    )
    return root


def train(work: Path, pairs: str, out: str, *extra: str) -> subprocess.CompletedProcess[str]:
    if (work / out).exists():
        return subprocess.CompletedProcess([], 0, "", "")
    return run(
        "train", "--embedder", "--config", str(work / "config.yaml"),
        "--pairs", str(work / pairs), "--out", str(work / out), "--base", str(work / "tiny"),
        *TINY, *extra,
    )  # fmt: skip


def card_of(folder: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((folder / "vetcache-embedder.json").read_text())
    return loaded


def test_train_writes_a_model_the_gateway_serves_under_a_new_fingerprint(work: Path) -> None:
    result = train(work, "train.tsv", "good")
    assert result.returncode == 0, result.stderr
    assert "validation, " in result.stdout and "margin0" in result.stdout
    card = card_of(work / "good")
    fingerprint = str(card["fingerprint"])
    assert fingerprint.startswith("good:64:") and fingerprint.endswith(":onnx-int8")
    assert card["base_fingerprint"] != fingerprint
    assert str(card["base_fingerprint"]).startswith("tiny:64:")
    assert card["version"] == fingerprint.split(":")[2]
    assert card["loss"] == "mnrl" and card["onnx_dir"] == str(work / "onnx")
    assert card["base_model"] == str(work / "tiny") and len(str(card["base_digest"])) == 64
    assert card["hyperparameters"]["lr"] == 0.001
    assert card["counts"]["source"] == {"file": 288}
    assert card["command"][:3] == ["vetcache", "train", "--embedder"]
    assert card["libraries"]["sentence-transformers"]
    metrics, base = card["metrics"], card["base_metrics"]
    assert set(metrics) == set(base) == {"train", "validation", "test"}
    tuned, before = metrics["validation"]["all"], base["validation"]["all"]
    assert tuned["margin"] > before["margin"] + 0.2  # contrastive training separated them
    assert {"fp_share", "recall", "mean_pos", "mean_neg"} <= set(tuned)
    assert "product=billing" in metrics["test"]

    exports = sorted((work / "onnx").iterdir())
    embedder = build_embedder(
        CacheSettings(embedding_model=str(work / "good"), onnx_dir=str(work / "onnx"))
    )

    async def served() -> str:
        await embedder.open()
        try:
            await embedder.embed("how do I reset my password")
        finally:
            await embedder.close()
        return embedder.fingerprint

    assert asyncio.run(served()) == fingerprint
    assert sorted((work / "onnx").iterdir()) == exports  # the export train made, reused


def test_the_recorded_command_rebuilds_the_same_weights(work: Path) -> None:
    assert train(work, "train.tsv", "good").returncode == 0
    card = card_of(work / "good")
    again = list(card["command"][1:])
    again[again.index("--out") + 1] = str(work / "again")
    assert main(again) == 0
    rebuilt = card_of(work / "again")
    assert rebuilt["version"] == card["version"]
    assert rebuilt["data_digest"] == card["data_digest"]
    assert rebuilt["metrics"] == card["metrics"]


def test_bad_input_is_one_line_exit_2_and_writes_nothing(work: Path) -> None:
    bad = work / "bad.tsv"
    bad.write_text(
        "id\tfamily\tproduct\tkind\tlanguage\ttext_a\ttext_b\tlabel\nx\tf\tp\tk\ten\ta\tb\t7\n"
    )
    result = train(work, "bad.tsv", "nothing")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("vetcache: train: ")
    assert "bad.tsv:2: label must be 0 or 1" in result.stderr
    result = train(work, "train.tsv", "nothing", "--layers", "2")
    assert result.returncode == 2 and "--layers" in result.stderr
    result = train(work, "train.tsv", "nothing", "--loss", "triplet")
    assert result.returncode == 2 and "invalid choice" in result.stderr
    assert not (work / "nothing").exists()
    assert not [p for p in work.iterdir() if p.name.startswith(".nothing")]
    verifier = run("train", "--pairs", str(work / "train.tsv"), "--out", str(work / "v"),
                   "--loss", "mnrl")  # fmt: skip
    assert verifier.returncode == 2 and "need --embedder" in verifier.stderr


def test_the_gate_refuses_a_flipped_candidate_naming_its_cohorts(work: Path) -> None:
    assert train(work, "train.tsv", "good").returncode == 0
    assert train(work, "flipped.tsv", "flipped").returncode == 0
    config = ["--config", str(work / "config.yaml"), "--threshold", "0.8"]
    evaluate = ["eval", "--pairs", str(work / "eval.tsv"), *config]
    passed = run(*evaluate, "--model", str(work / "good"), "--against", str(work / "tiny"))
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert passed.stdout.rstrip().endswith("passed")
    refused = run(*evaluate, "--model", str(work / "flipped"), "--against", str(work / "good"))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    verdict = refused.stdout.rstrip().splitlines()[-1]
    assert verdict.startswith("REFUSED")
    for cohort in COHORTS:
        assert cohort in verdict
    assert "margin" in refused.stdout and "regressed from" in refused.stdout
    alone = run(*evaluate, "--model", str(work / "flipped"), "--against", str(work / "flipped"))
    assert alone.returncode == 1  # below the 0.18 margin even without a regression
    assert "< 0.180" in alone.stdout


async def _fill_ledger(redis_url: str, namespace: str) -> None:
    """Judge verdicts through the real ledger: per cached prompt a hit judged correct (a
    polite paraphrase) and one judged a false positive (a negation): the failed hits."""
    queue, ledger = build_queue_and_ledger(AuditSettings(), redis_url)
    try:
        for verb in VERBS[:6]:
            for thing in THINGS[8:]:
                cached = f"how do I {verb} my {thing}"
                for new, verdict in (
                    (f"please, how can I {verb} my {thing}?", "correct"),
                    (f"how do I not {verb} my {thing}", "false_positive"),
                ):
                    job = AuditJob(
                        job_id=uuid.uuid4().hex, request_id=uuid.uuid4().hex, entry_id="e",
                        new_prompt=new, cached_prompt=cached, cached_answer="An answer.",
                        similarity=0.93, threshold=0.9, namespace=namespace, model="m",
                        embedder="tiny",
                    )  # fmt: skip
                    judged = Verdict(
                        id=job.job_id, source="judge", job=job, verdict=verdict,
                        judge="contrast/2", created_at=time.time(),
                    )  # fmt: skip
                    assert await ledger.record(judged)
    finally:
        await queue.close()
        await ledger.close()


def test_the_gate_reads_the_ledger(work: Path, redis_url: str) -> None:
    assert train(work, "train.tsv", "good").returncode == 0
    assert train(work, "flipped.tsv", "flipped").returncode == 0
    namespace = f"gate-{uuid.uuid4().hex[:8]}"
    asyncio.run(_fill_ledger(redis_url, namespace))
    config = work / "ledger.yaml"
    config.write_text(
        f"redis_url: {redis_url}\nauth:\n  enabled: false\ncache:\n"
        f"  onnx_dir: {work / 'onnx'}\n  threshold: 0.8\n"
    )
    ledger = ["eval", "--ledger", "--config", str(config), "--namespace", namespace]
    passed = run(*ledger, "--model", str(work / "good"), "--against", str(work / "tiny"))
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "48 pairs from the ledger; at threshold 0.8" in passed.stdout
    refused = run(*ledger, "--model", str(work / "flipped"), "--against", str(work / "good"))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    verdict = refused.stdout.rstrip().splitlines()[-1]
    assert verdict.startswith("REFUSED") and f"product={namespace}" in verdict
    assert "kind=hit" in verdict
    both = run(*ledger, "--pairs", str(work / "eval.tsv"))
    assert both.returncode == 2 and "not both" in both.stderr
