"""What a label does. A false hit becomes a hard negative and, under the namespace's action:
``raise``, joins its entry's labelled neighbourhood (``cache.neighbourhood``: when its job kept
the request's vector, or was an exact repeat) or else raises the entry's bar; ``quarantine``,
quarantines it. A correct hit joins the neighbourhood too. A later outside label saying the
pair was fine takes the hard negative back, replaces the false label in the neighbourhood, and
undoes what that verdict did to the entry (its guard is set to what the entry's remaining
false labels without a vector call for: the bar of the highest, quarantine if any; none left,
none at all); an admission audit releases its new entry or discards it.

``settle`` is the one sequence for every label, the worker's judge verdicts and the outside
labels (feedback, reviews) alike: record it once, tell the observer, act. Acting is
idempotent, so a redelivered job or a repeated label changes nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from audit.ledgers.base import Ledger
from audit.observe import AuditObserver
from audit.schema import AuditJob, HardNegative, Verdict, pair_id
from audit.settings import AuditSettings
from cache.errors import StoreError
from cache.neighbourhood import Label
from cache.stores.base import Store

log = logging.getLogger("vetcache.audit")
LABELS_REREAD = 1000
"""Newest verdicts of a namespace read to find an entry's remaining false labels when a
person overturns one (older ones are not seen: the ledger is bounded anyway)."""
RANK = {"judge": 0, "feedback": 1, "review": 2}
"""Which label of a job is in force: the highest-ranked source, then the newest."""


async def settle(
    verdict: Verdict,
    ledger: Ledger,
    store: Store,
    settings: AuditSettings,
    observer: AuditObserver,
) -> Verdict:
    """Record ``verdict``, count it, act on it; the verdict in force. A judge verdict for a
    job that already has one (a redelivery racing a reclaim) is not recorded again: the one
    recorded first is acted on. Ledger errors propagate."""
    if await ledger.record(verdict):
        observer.verdict_recorded(verdict)
    else:
        verdict = await ledger.get(verdict.job.job_id) or verdict
    await act_on(verdict, store, ledger, settings)
    return verdict


async def act_on(verdict: Verdict, store: Store, ledger: Ledger, settings: AuditSettings) -> None:
    """Apply ``verdict``. Ledger errors propagate (the caller retries or reports); a store
    error only costs the guard, and is logged."""
    job = verdict.job
    if job.admission:
        await _settle_admission(verdict, store)
        return
    if verdict.verdict == "correct" and verdict.source == "judge" and not job.near_miss:
        await _label(verdict, store)
    if verdict.verdict == "correct" and verdict.source != "judge":
        await ledger.drop_hard_negative(pair_id(job.namespace, job.cached_prompt, job.new_prompt))
        if not job.near_miss:
            await _regard(verdict, store, ledger, settings)
        return
    if verdict.verdict == "false_positive":
        await _false_hit(verdict, store, ledger, settings)


async def _false_hit(
    verdict: Verdict, store: Store, ledger: Ledger, settings: AuditSettings
) -> None:
    """A hard negative; for a served hit, a false label of the entry (``raise`` with a
    vector), its bar raised (``raise`` without) or its quarantine."""
    job = verdict.job
    await ledger.add_hard_negative(
        HardNegative(
            cached_prompt=job.cached_prompt,
            new_prompt=job.new_prompt,
            similarity=job.similarity,
            namespace=job.namespace,
            model=job.model,
            embedder=job.embedder,
            source=verdict.source,
            verdict_id=verdict.id,
            created_at=verdict.created_at,
        )
    )
    if job.near_miss:
        return  # nothing was served, so there is nothing to guard
    action = settings.action_for(job.namespace)
    if action == "raise" and await _label(verdict, store):
        return  # the neighbourhood decides: no bar for paraphrases further from the trap
    try:
        if action == "raise":
            bar = min(1.0, job.similarity + settings.raise_margin)
            await store.guard(job.scope, job.entry_id, min_similarity=bar)
        elif action == "quarantine":
            await store.guard(job.scope, job.entry_id, quarantine=True)
    except StoreError as exc:
        log.warning("could not %s entry %s: %s", action, job.entry_id, type(exc).__name__)


async def _regard(verdict: Verdict, store: Store, ledger: Ledger, settings: AuditSettings) -> None:
    """Undo what a false label on ``verdict``'s job did to its entry, now that an outside
    "correct" (``verdict``, already recorded) overturns it: the entry's guard becomes what its
    false labels still in force call for. Nothing changes unless the job's label in force was
    false before and is ``verdict`` now (a person's "false" is not overturned by feedback)."""
    job = verdict.job
    found = await ledger.query(namespace=job.namespace, limit=LABELS_REREAD)
    labels = [v for v in found if v.job.entry_id == job.entry_id and not v.job.near_miss]
    before = _in_force(v for v in labels if v.id != verdict.id).get(job.job_id)
    after = _in_force([*labels, verdict])
    if after[job.job_id] is verdict:
        await _label(verdict, store)  # replaces the job's false label, if it had one
    if before is None or before.verdict != "false_positive" or after[job.job_id] is not verdict:
        return
    false = [
        v.job.similarity
        for v in after.values()
        if v.verdict == "false_positive" and _as_label(v) is None  # labels set no bar
    ]
    action = settings.action_for(job.namespace)
    bar = min(1.0, max(false) + settings.raise_margin) if action == "raise" and false else None
    quarantined = action == "quarantine" and bool(false)
    try:
        await store.restore(job.scope, job.entry_id, min_similarity=bar, quarantined=quarantined)
    except StoreError as exc:
        log.warning("could not restore entry %s: %s", job.entry_id, type(exc).__name__)


def _as_label(verdict: Verdict) -> Label | None:
    """``verdict`` as a label of its entry's neighbourhood: None when its job kept no vector
    (a near-miss, a job recorded before vectors were kept, a feedback label)."""
    job: AuditJob = verdict.job
    if job.vector is None and not job.exact:
        return None
    return Label(
        id=job.job_id,
        correct=verdict.verdict == "correct",
        similarity=job.similarity,
        vector=job.vector,
        created_at=verdict.created_at,
    )


async def _label(verdict: Verdict, store: Store) -> bool:
    """Keep ``verdict`` among its entry's labels; whether it was kept (a store error is
    logged: a false label then falls back to the bar)."""
    label = _as_label(verdict)
    if label is None:
        return False
    try:
        return await store.add_label(verdict.job.scope, verdict.job.entry_id, label)
    except StoreError as exc:
        log.warning("could not label entry %s: %s", verdict.job.entry_id, type(exc).__name__)
        return False


def _in_force(labels: Iterable[Verdict]) -> dict[str, Verdict]:
    """The label in force per job: a review beats feedback beats the judge, then the newest
    (as ``audit.stats.effective``, but every tenant's feedback: it acted on the entry)."""
    best: dict[str, Verdict] = {}
    for label in labels:
        current = best.get(label.job.job_id)
        if current is None or (RANK[label.source], label.created_at) >= (
            RANK[current.source],
            current.created_at,
        ):
            best[label.job.job_id] = label
    return best


async def _settle_admission(verdict: Verdict, store: Store) -> None:
    """A new entry's audit: a pass releases it; anything else (a fail, uncertain, or a judge
    error) discards it, so the next identical request is admitted and audited afresh."""
    job = verdict.job
    try:
        if verdict.verdict == "correct":
            await store.release(job.scope, job.entry_id)
        else:
            await store.discard(job.scope, job.entry_id)
    except StoreError as exc:
        log.warning("could not settle entry %s: %s", job.entry_id, type(exc).__name__)
