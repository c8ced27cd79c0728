"""Training pairs from the audit ledger: the labels the product earned on its own traffic.

One pair per audited job (served hit, shadow hit, or near-miss; admission audits and exact
repeats teach nothing about paraphrase and are left out), labelled by the strongest word on
it: a person's review beats the app's feedback beats the judge (as ``audit.stats.effective``
ranks them). A judge's ``false_positive`` on a hit is a hard negative (0), its ``correct``
a positive (1); a near-miss judged correct is a positive the threshold missed. Feedback
counts only as a thumbs-down (0): an app not complaining is no proof. ``uncertain`` and
``error`` labels teach nothing and are skipped. A pair's family is its cached prompt, so
every pair served from one entry stays in one split.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable

from audit.ledgers.base import Ledger
from audit.schema import AuditJob, Verdict, job_kind
from audit.settings import AuditSettings
from audit.training.records import Cohorts, Provenance, SourceKind, TrainingPair, length_of
from audit.training.records import normalize as normalize_text
from cache import language

_RANK = {"judge": 0, "feedback": 1, "review": 2}
_LABEL = {"correct": 1, "false_positive": 0}


def _usable(verdict: Verdict) -> bool:
    if verdict.verdict not in _LABEL:
        return False
    return not (verdict.source == "feedback" and verdict.verdict == "correct")


def _strongest(verdicts: Iterable[Verdict]) -> Verdict | None:
    """The label that decides a job: highest rank, then newest."""
    usable = [verdict for verdict in verdicts if _usable(verdict)]
    if not usable:
        return None
    return max(usable, key=lambda v: (_RANK[v.source], v.created_at))


def _learnable(job: AuditJob) -> bool:
    return job_kind(job) in ("hit", "shadow", "near_miss") and job.cached_prompt != job.new_prompt


def family_of(cached_prompt: str) -> str:
    """The family of every pair served from one cached prompt."""
    digest = hashlib.blake2b(normalize_text(cached_prompt).encode(), digest_size=8)
    return f"ledger:{digest.hexdigest()}"


def _source(verdict: Verdict) -> SourceKind:
    return "ledger" if verdict.source == "judge" else verdict.source


def _pair(verdict: Verdict) -> TrainingPair:
    job = verdict.job
    source = _source(verdict)
    return TrainingPair(
        text_a=job.cached_prompt,
        text_b=job.new_prompt,
        label=_LABEL[verdict.verdict],
        family=family_of(job.cached_prompt),
        cohorts=Cohorts(
            product=job.namespace,
            kind=job_kind(job),
            language=language.detect(job.new_prompt),
            length=length_of(job.cached_prompt, job.new_prompt),
            source=source,
        ),
        provenance=Provenance(
            source=source,
            ref=f"job {job.job_id} request {job.request_id}",
            judge=verdict.judge,
            embedder=job.embedder,
            verifier=job.verifier,
            verifier_score=job.verifier_score,
            time=verdict.created_at,
        ),
    )


def ledger_pairs(verdicts: Iterable[Verdict]) -> list[TrainingPair]:
    """One pair per labelled job of ``verdicts`` (any order), oldest first."""
    by_job: dict[str, list[Verdict]] = defaultdict(list)
    for verdict in verdicts:
        if _learnable(verdict.job):
            by_job[verdict.job.job_id].append(verdict)
    chosen = [found for group in by_job.values() if (found := _strongest(group)) is not None]
    chosen.sort(key=lambda v: (v.job.queued_at, v.created_at, v.job.job_id))
    return [_pair(verdict) for verdict in chosen]


async def read_ledger(ledger: Ledger, namespace: str | None = None) -> list[TrainingPair]:
    """Every labelled pair the ledger keeps (of one namespace, or all)."""
    return ledger_pairs(await ledger.query(namespace=namespace, limit=None))


async def read_audit_ledger(
    settings: AuditSettings,
    redis_url: str | None,
    *,
    redis_cluster: bool = False,
    namespace: str | None = None,
) -> list[TrainingPair]:
    """Every labelled pair of the ledger the gateway's settings name (``vetcache train
    --ledger`` and ``vetcache eval --ledger``); ``LedgerError`` when it is unreachable."""
    from audit.backends import build_queue_and_ledger

    queue, ledger = build_queue_and_ledger(settings, redis_url, redis_cluster=redis_cluster)
    try:
        return await read_ledger(ledger, namespace)
    finally:
        await queue.close()
        await ledger.close()
