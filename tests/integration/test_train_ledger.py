"""``vetcache train --ledger`` on a real Redis Stack: verdicts, a person's reviews and an
app's feedback recorded through the real ledger become training pairs with their
provenance, and a model trained on them counts each source in its card."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import pytest

from audit import build_queue_and_ledger
from audit.ledgers.base import Ledger
from audit.schema import AuditJob, Verdict
from audit.settings import AuditSettings
from audit.training.ledger import read_ledger
from audit.training.records import TrainingPair
from proxy.cli import main
from tests.tiny_models import THINGS, VERBS, tiny_base

pytestmark = pytest.mark.integration


def job(namespace: str, cached: str, new: str, **extra: object) -> AuditJob:
    return AuditJob.model_validate(
        {
            "job_id": uuid.uuid4().hex, "request_id": uuid.uuid4().hex, "entry_id": "e",
            "new_prompt": new, "cached_prompt": cached, "cached_answer": "An answer.",
            "similarity": 0.93, "threshold": 0.9, "namespace": namespace, "model": "m",
            "embedder": "emb:test", **extra,
        }
    )  # fmt: skip


async def label(ledger: Ledger, the_job: AuditJob, kind: str, source: str = "judge") -> None:
    judge = "contrast/2" if source == "judge" else source
    verdict = Verdict(
        id=the_job.job_id if source == "judge" else uuid.uuid4().hex, source=source,
        job=the_job, verdict=kind, judge=judge, created_at=time.time(),
    )  # fmt: skip
    assert await ledger.record(verdict)


async def fill(ledger: Ledger, namespace: str) -> dict[str, str]:
    """Judge verdicts on 48 cached prompts (a positive and a trap each); one judged-false hit
    a person reviewed as correct, one judged-correct hit an app complained about, one
    unsure verdict. Returns the new prompts whose label came from elsewhere than the judge."""
    special: dict[str, str] = {}
    for number, (verb, thing) in enumerate((v, t) for v in VERBS[:6] for t in THINGS[:8]):
        cached = f"how do I {verb} my {thing}"
        good = job(namespace, cached, f"please, how can I {verb} my {thing}?")
        trap = job(namespace, cached, f"how do I not {verb} my {thing}")
        await label(ledger, good, "correct")
        await label(ledger, trap, "false_positive")
        if number == 0:
            await label(ledger, trap, "correct", source="review")
            special[trap.new_prompt] = "review"
        if number == 1:
            await label(ledger, good, "false_positive", source="feedback")
            special[good.new_prompt] = "feedback"
    await label(ledger, job(namespace, "what is my balance", "what's my balance"), "uncertain")
    return special


async def recorded(redis_url: str, namespace: str) -> tuple[dict[str, str], list[TrainingPair]]:
    """``fill`` through the real ledger, then what ``vetcache train --ledger`` reads."""
    queue, ledger = build_queue_and_ledger(AuditSettings(), redis_url)
    try:
        special = await fill(ledger, namespace)
        return special, await read_ledger(ledger, namespace)
    finally:
        await queue.close()
        await ledger.close()


async def test_the_ledgers_labels_become_pairs_with_provenance(redis_url: str) -> None:
    namespace = f"train-{uuid.uuid4().hex[:8]}"
    special, pairs = await recorded(redis_url, namespace)
    assert len(pairs) == 96  # the unsure verdict taught nothing
    by_text = {p.text_b: p for p in pairs}
    reviewed, complained = (by_text[t] for t in special)
    assert (reviewed.label, reviewed.provenance.source, reviewed.provenance.judge) == (
        1, "review", "review",
    )  # fmt: skip
    assert (complained.label, complained.provenance.source) == (0, "feedback")
    judged = by_text["how do I not cancel my password"]
    assert (judged.label, judged.cohorts.product, judged.cohorts.kind) == (0, namespace, "hit")
    assert judged.provenance.judge == "contrast/2" and judged.provenance.embedder == "emb:test"
    assert judged.provenance.ref.startswith("job ") and judged.provenance.time > 0
    assert len({p.family for p in pairs}) == 48


def test_train_ledger_counts_each_source_in_the_card(redis_url: str, tmp_path: Path) -> None:
    namespace = f"train-{uuid.uuid4().hex[:8]}"
    asyncio.run(recorded(redis_url, namespace))
    config = tmp_path / "config.yaml"
    config.write_text(
        f"redis_url: {redis_url}\nauth:\n  enabled: false\ncache:\n  embedding_backend: torch\n"
    )
    status = main(
        ["train", "--ledger", "--namespace", namespace, "--config", str(config),
         "--out", str(tmp_path / "model"), "--base", str(tiny_base(tmp_path / "tiny")),
         "--layers", "2", "--epochs", "2", "--lr", "1e-3", "--batch-size", "16", "--floor", "0"]
    )  # fmt: skip
    assert status in (0, 1)  # 1: no threshold met the target on this small validation split
    card = json.loads((tmp_path / "model" / "vetcache-verifier.json").read_text())
    assert card["counts"]["source"] == {"feedback": 1, "ledger": 94, "review": 1}
    assert "--ledger" in card["command"] and namespace in card["command"]
