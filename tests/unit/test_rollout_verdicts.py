"""The judge's labels on a rollout target's would-be hits: queued by the auditor with the
target's version, counted as the cutover's evidence per cohort, and kept out of the serving
version's FP rates and tuning."""

from __future__ import annotations

import time
import uuid

from audit.auditor import Auditor
from audit.ledgers.memory import MemoryLedger
from audit.queues.memory import MemoryQueue
from audit.rollout_evidence import judged, split_verdicts
from audit.schema import AuditJob, Verdict, VerdictKind
from audit.settings import AuditSettings
from audit.stats import fp_breakdown
from audit.tune import labels_from_verdicts
from cache.schema import CacheEntry, CacheKey, Candidate, Lookup, Outcome
from cache.stores.memory import MemoryStore
from cache.versions import VersionState


def verdict(kind: VerdictKind, *, rollout: bool, embedder: str, prompt: str = "n") -> Verdict:
    job = AuditJob(
        job_id=uuid.uuid4().hex, request_id="r", entry_id="e", new_prompt=prompt,
        cached_prompt="c", cached_answer="a", similarity=0.93, threshold=0.9,
        namespace="ns", model="m", embedder=embedder, rollout=rollout,
    )  # fmt: skip
    return Verdict(id=job.job_id, job=job, verdict=kind, judge="contrast/2", created_at=time.time())


def test_rollout_verdicts_are_evidence_not_fp_rate() -> None:
    found = [
        verdict("false_positive", rollout=True, embedder="b"),
        verdict("correct", rollout=True, embedder="b"),
        verdict("correct", rollout=False, embedder="a"),
    ]
    assert fp_breakdown(found, 3600).overall.labelled == 1
    assert len(labels_from_verdicts(found, AuditSettings())) == 1
    state = VersionState(serving="a", target="b", changed_at=0.0)
    target, serving = split_verdicts(found, state)
    assert judged(target)["all"].model_dump() == {"judged": 2, "false": 1}
    assert judged(serving)["all"].model_dump() == {"judged": 1, "false": 0}
    assert judged(target)["length=short"].judged == 2


async def test_the_auditor_queues_a_would_be_hit_of_the_target_with_its_version() -> None:
    queue = MemoryQueue()
    settings = AuditSettings(sample_rate=1.0)
    auditor = Auditor(settings, queue, MemoryLedger(), MemoryStore(), run_worker=False)
    key = CacheKey(scope="s", exact="x", base="b", prompt="p", embedder="v2:32",
                   text="hello there", tenant="t", namespace="ns", model="m")  # fmt: skip
    entry = CacheEntry(id="copy", scope="s", exact="x", namespace="ns", tenant="t", model="m",
                       text="hello", response="{}", embedder="v2:32", created_at=time.time(),
                       origin="orig")  # fmt: skip
    would = Lookup(outcome=Outcome.HIT, threshold=0.9,
                   candidate=Candidate(entry=entry, similarity=0.95, exact=False))  # fmt: skip
    await auditor.rollout_hit(request_id="r1", key=key, lookup=would)
    await auditor.rollout_hit(request_id="r2", key=key, lookup=Lookup(outcome=Outcome.MISS,
                                                                      threshold=0.9))  # fmt: skip
    jobs = [delivery.job for delivery in await queue.take("w", 10, 1.0)]
    assert [(j.request_id, j.rollout, j.embedder, j.entry_id, j.sample_p) for j in jobs] == [
        ("r1", True, "v2:32", "copy", 1.0)
    ]
