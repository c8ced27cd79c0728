"""The audit path as the gateway sees it: after each lookup, maybe queue a job; and the
verbs the admin routes, the metrics and the autopilot use (label, verdicts, FP rates, tune).

``after_lookup`` runs after the answer is sent (the route schedules it as a background
task), so sampling never adds latency. Queue or ledger failures are logged and counted,
never raised; a job the queue refuses waits in the spill (``audit.spill``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from typing import Literal

import orjson

from audit.actions import settle
from audit.autopilot import Autopilot, Move
from audit.errors import AuditError, LedgerError, QueueError
from audit.judges import build_judge
from audit.ledgers.base import Ledger, Served, served_ref, similarity_bin
from audit.observe import NULL_AUDIT_OBSERVER, AuditObserver
from audit.queues.base import JobQueue
from audit.review import ReviewRow, review_rows
from audit.sampler import Sampler
from audit.schema import AuditJob, HardNegative, Verdict, VerdictKind
from audit.settings import AuditSettings
from audit.spill import Spill
from audit.stats import FPBreakdown, fp_breakdown
from audit.trace_context import traceparent
from audit.tune import DEFAULT_MIN_BAND_LABELS, TuneReport, report_from_ledger
from audit.worker import AuditWorker
from cache.errors import StoreError
from cache.neighbourhood import pack
from cache.schema import CacheEntry, CacheKey, Candidate, Lookup, Outcome
from cache.semantic import SemanticCache
from cache.stores.base import Store

log = logging.getLogger("vetcache.audit")

REVIEW_SCAN = 5000
"""Newest verdicts the review queue looks through."""


class Auditor:
    """Sampler + spilling queue + ledger, and (embedded default) an in-process worker."""

    def __init__(
        self,
        settings: AuditSettings,
        queue: JobQueue,
        ledger: Ledger,
        store: Store,
        *,
        run_worker: bool,
        sampler: Sampler | None = None,
        observer: AuditObserver = NULL_AUDIT_OBSERVER,
    ) -> None:
        self.observer = observer
        self.settings = settings
        self.store = store
        self.queue = queue
        self.ledger = ledger
        self.sampler = sampler or Sampler(settings)
        self.errors = 0
        self.worker = (
            AuditWorker("gateway", queue, build_judge(settings), ledger, store, settings, observer)
            if run_worker
            else None
        )
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.spill = Spill(queue, settings.spill_max, observer, self._refused)

    async def open(self) -> None:
        """Prepare the queue; a Redis that is down now does not stop the gateway (jobs are
        spilled, logged, until it is back; workers create the consumer group themselves)."""
        try:
            await self.queue.open()
            await self.ledger.open()
        except AuditError as exc:
            self.errors += 1
            self.observer.cache_error("audit")
            log.warning("audit queue unavailable at start: %s", type(exc).__name__)
        if self.worker is not None:
            self._task = asyncio.create_task(self.worker.run(self._stop), name="vetcache-audit")
        self.spill.start()

    async def close(self) -> None:
        self._stop.set()
        await self.spill.stop()  # a last try for what is still spilled
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self.worker is not None:
            await self.worker.judge.aclose()
        await self.queue.close()
        await self.ledger.close()

    async def after_lookup(
        self,
        *,
        request_id: str,
        key: CacheKey,
        lookup: Lookup,
        key_id: str | None,
    ) -> None:
        """Count the lookup's similarity (for tuning); remember a served (or shadow) hit for
        feedback; queue it, or a near-miss, if sampled. One ledger round trip per lookup.
        Reads the serving policy's decision as it is (``Lookup``); a failed-open lookup
        tells nothing."""
        if lookup.outcome == Outcome.FAIL_OPEN:
            return
        try:
            served = lookup.hit or lookup.shadow_hit
            if served is not None:
                await self._served(request_id, key, lookup, served, key_id)
                return
            await self.ledger.count_lookup(key.namespace, similarity_bin(lookup.best_similarity))
            near = lookup.candidate
            if (
                near is not None
                and lookup.refused is None
                and self.sampler.near_miss(near.similarity, lookup.threshold)
            ):
                job = _job(request_id, key, near.entry, near.similarity, lookup.threshold)
                update = {"near_miss": True, "sample_p": self.settings.near_miss_rate}
                await self.spill.put(job.model_copy(update=update))
        except LedgerError as exc:
            self._failed("lookup not counted", request_id, exc)

    async def _served(
        self,
        request_id: str,
        key: CacheKey,
        lookup: Lookup,
        served: Candidate,
        key_id: str | None,
    ) -> None:
        """Remember a served (or would-be served) hit, which counts its lookup too; audit
        it if the sampler says so (always during the entry's burn-in)."""
        job = _job(request_id, key, served.entry, served.similarity, lookup.threshold)
        job = job.model_copy(
            update={
                "shadow": lookup.shadow,
                "exact": served.exact,
                "verifier": lookup.verifier,
                "verifier_score": lookup.verifier_score,
            }
        )
        try:
            seen = await self.ledger.remember(
                Served(job=job, key_id=key_id), self.settings.served_ttl_s
            )
        except LedgerError as exc:  # unknown count: audit it as if it were new
            self._failed("served hit not recorded", request_id, exc)
            seen = 1
        if self.sampler.hit(key.namespace, seen):
            p = self.sampler.hit_probability(key.namespace, seen)
            vector = lookup.vector if not served.exact else None
            packed = pack(vector) if vector is not None else None
            await self.spill.put(job.model_copy(update={"sample_p": p, "vector": packed}))

    async def rollout_hit(self, *, request_id: str, key: CacheKey, lookup: Lookup) -> None:
        """Queue the would-be hit of a migrating namespace's target version (``key`` and
        ``lookup`` under the target, ``cache.version_shadow``) for the judge: evidence for
        the cutover, sampled at the namespace's audit rate (no burn-in: the copies are not
        served); nothing is remembered for feedback (the serving version answered)."""
        would = lookup.hit or lookup.shadow_hit
        p = self.settings.sample_rate_for(key.namespace)
        if would is None or not self.sampler.hit(key.namespace, self.settings.burn_in + 1):
            return
        job = _job(request_id, key, would.entry, would.similarity, lookup.threshold)
        update = {
            "rollout": True,
            "exact": would.exact,
            "verifier": lookup.verifier,
            "verifier_score": lookup.verifier_score,
            "sample_p": p,
        }
        await self.spill.put(job.model_copy(update=update))

    def _failed(self, what: str, request_id: str, exc: Exception) -> None:
        self.errors += 1
        self.observer.cache_error("audit")
        log.warning("audit: %s request_id=%s: %s", what, request_id, type(exc).__name__)

    def _refused(self, job: AuditJob, exc: QueueError) -> None:
        self._failed("job spilled, queue unreachable", job.request_id, exc)

    async def admission(self, *, request_id: str, key: CacheKey, entry: CacheEntry) -> None:
        """Queue the admission audit of a new, pending entry (``audited`` policy: always,
        not sampled). If it cannot be queued the entry is discarded, so a later identical
        request is admitted and queued again rather than waiting forever."""
        job = _job(request_id, key, entry, 1.0, 1.0).model_copy(update={"admission": True})
        try:
            await self.queue.put(job)
            self.observer.job_queued(job)
        except QueueError as exc:
            self.errors += 1
            self.observer.cache_error("audit")
            log.warning("admission audit not queued entry=%s: %s", entry.id, type(exc).__name__)
            with suppress(StoreError):  # else it stays pending (never served)
                await self.store.discard(key.scope, entry.id)

    # The verbs the gateway's routes, metrics and autopilot use.

    @property
    def spilled(self) -> int:
        """Jobs held in this process while the queue is unreachable."""
        return len(self.spill)

    async def queue_depth(self) -> int:
        """Jobs waiting or in progress (``QueueError`` when the queue is unreachable)."""
        return await self.queue.depth()

    async def verdicts(
        self,
        *,
        namespace: str | None = None,
        verdict: VerdictKind | None = None,
        since: float = 0.0,
        limit: int | None = 100,
    ) -> list[Verdict]:
        """Verdicts at or after ``since``, newest first, filtered."""
        return await self.ledger.query(
            namespace=namespace, verdict=verdict, since=since, limit=limit
        )

    async def verdicts_since(self, since: float) -> list[Verdict]:
        """Every verdict at or after ``since``, newest first."""
        return await self.ledger.query(since=since, limit=None)

    async def verdict(self, verdict_id: str) -> Verdict | None:
        """One verdict."""
        return await self.ledger.get(verdict_id)

    async def served(self, tenant: str, key_id: str | None, request_id: str) -> Served | None:
        """The hit served to ``request_id`` of this tenant's key, while it is kept for
        feedback (another tenant or key reusing the id has a record of its own)."""
        return await self.ledger.served(served_ref(tenant, key_id, request_id))

    async def label(
        self,
        base: Verdict,
        source: Literal["feedback", "review"],
        correct: bool,
        comment: str = "",
    ) -> Verdict:
        """An outside label on ``base``'s pair (the app's feedback, a person's review):
        recorded, counted and acted on as a judge verdict is."""
        verdict = Verdict(
            id=uuid.uuid4().hex,
            source=source,
            job=base.job,
            verdict="correct" if correct else "false_positive",
            reason=comment,
            judge=source,
            created_at=time.time(),
        )
        return await settle(verdict, self.ledger, self.store, self.settings, self.observer)

    async def hard_negatives(
        self, *, namespace: str | None = None, limit: int | None = 1000
    ) -> list[HardNegative]:
        """Pairs labelled false hits, newest first."""
        return await self.ledger.hard_negatives(namespace=namespace, limit=limit)

    async def fp_breakdown(self, namespace: str | None, window_s: int) -> FPBreakdown:
        """FP rates of the last ``window_s`` seconds: overall, per namespace, in shadow mode,
        per cohort."""
        since = time.time() - window_s
        found = await self.ledger.query(namespace=namespace, since=since, limit=None)
        return fp_breakdown(found, window_s)

    async def review_queue(self, limit: int) -> list[ReviewRow]:
        """Recent labels a person should look at, newest first, each with its latest review."""
        return review_rows(await self.ledger.query(limit=REVIEW_SCAN), limit)

    async def tune(
        self,
        namespace: str,
        target_fp: float,
        *,
        hours: int,
        current: float | None,
        min_band_labels: int = DEFAULT_MIN_BAND_LABELS,
    ) -> TuneReport:
        """``vetcache tune``'s report for ``namespace`` from the shared ledger."""
        return await report_from_ledger(
            self.ledger, self.settings, namespace, target_fp, hours=hours, current=current,
            min_band_labels=min_band_labels,
        )  # fmt: skip

    def autopilot(self, cache: SemanticCache, on_move: Callable[[Move], None]) -> Autopilot:
        """The threshold autopilot for the namespaces ``audit.autopilot`` names (not started);
        one gateway at a time leads it, by a lock in the ledger."""
        owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        return Autopilot(self.settings.autopilot, self.settings, self.ledger, cache, owner, on_move)


def _job(
    request_id: str, key: CacheKey, entry: CacheEntry, similarity: float, threshold: float
) -> AuditJob:
    return AuditJob(
        job_id=uuid.uuid4().hex,
        request_id=request_id,
        entry_id=entry.id,
        new_prompt=key.text,
        cached_prompt=entry.text,
        cached_answer=_answer_text(entry.response),
        similarity=max(-1.0, min(1.0, similarity)),
        threshold=threshold,
        namespace=key.namespace,
        model=key.model,
        scope=key.scope,
        tenant=key.tenant,
        embedder=entry.embedder,
        queued_at=time.time(),
        traceparent=traceparent(),  # the request's span, when tracing is on
    )


def _answer_text(response: str) -> str:
    """The assistant text of a cached completion (the judge reads text, not JSON)."""
    try:
        completion = orjson.loads(response)
        message = completion["choices"][0]["message"]
        return str(message.get("content") or orjson.dumps(message.get("tool_calls")).decode())
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return response
