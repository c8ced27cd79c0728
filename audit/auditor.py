"""The gateway's side of the audit path: after each lookup, maybe queue a job.

Runs after the answer is sent (the route schedules it as a background task), so sampling
never adds latency. Queue or ledger failures are logged and counted, never raised. A job
the queue refuses (Redis down) waits in a bounded in-memory spill and is queued again, in
order, once the queue answers; only a gateway that dies while Redis is down, or a spill
past ``audit.spill_max``, loses jobs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import time
import uuid

import orjson

from audit.judges.base import Judge
from audit.judges.contrast import ContrastJudge
from audit.judges.cross_encoder import CrossEncoderJudge
from audit.judges.llm import LLMJudge
from audit.ledgers.base import Ledger, LedgerError, Served
from audit.observe import NULL_AUDIT_OBSERVER, AuditObserver
from audit.queues.base import JobQueue, QueueError
from audit.sampler import Sampler
from audit.schema import AuditJob
from audit.settings import AuditSettings
from audit.trace_context import traceparent
from audit.tune import similarity_bin
from audit.worker import AuditWorker
from cache.schema import CacheEntry, CacheKey
from cache.semantic import Lookup
from cache.stores.base import Store, StoreError

log = logging.getLogger("vetcache.audit")

SPILL_RETRY_S = 1.0
"""How often spilled jobs are offered to the queue again."""


def build_judge(settings: AuditSettings) -> Judge:
    """The judge the settings name."""
    if settings.judge == "llm":
        return LLMJudge(settings.llm)
    if settings.judge == "cross-encoder":
        return CrossEncoderJudge(settings.cross_encoder)
    return ContrastJudge()


class Auditor:
    """Sampler + queue + ledger, and (embedded default) an in-process worker."""

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
        self.spill: collections.deque[AuditJob] = collections.deque()
        self.spill_dropped = 0
        self._requeueing = asyncio.Lock()  # the retry loop and a new job may both drain
        self._refused_at = -math.inf  # when the queue last refused a job (monotonic)
        self._spiller: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Prepare the queue; a Redis that is down now does not stop the gateway (jobs fail
        to queue, logged, until it is back; workers create the consumer group themselves)."""
        try:
            await self.queue.open()
            await self.ledger.open()
        except (QueueError, LedgerError) as exc:
            self.errors += 1
            self.observer.cache_error("audit")
            log.warning("audit queue unavailable at start: %s", type(exc).__name__)
        if self.worker is not None:
            self._task = asyncio.create_task(self.worker.run(self._stop), name="vetcache-audit")
        self._spiller = asyncio.create_task(self._requeue_forever(), name="vetcache-spill")

    async def close(self) -> None:
        self._stop.set()
        if self._spiller is not None:
            await asyncio.wait({self._spiller}, timeout=5.0)
        await self.requeue()  # a last try for what is still spilled
        if self.spill:
            log.warning("audit jobs lost at shutdown: %d (queue unreachable)", len(self.spill))
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
        """Count the lookup's similarity (for tuning); remember a served hit for feedback;
        queue it (or a near-miss) if sampled. One ledger round trip per lookup."""
        try:
            served = lookup.hit if lookup.outcome == "hit" else lookup.shadow_hit
            if served is None and lookup.outcome in ("hit", "miss"):
                await self.ledger.count_lookup(
                    key.namespace, similarity_bin(lookup.best_similarity)
                )
            if served is not None:  # remember() counts its lookup too
                job = _job(request_id, key, served.entry, served.similarity, lookup.threshold)
                job = job.model_copy(update={"shadow": lookup.shadow_hit is not None})
                try:
                    served_record = Served(job=job, key_id=key_id)
                    seen = await self.ledger.remember(served_record, self.settings.served_ttl_s)
                except LedgerError as exc:  # unknown count: audit it as if it were new
                    self._failed("served hit not recorded", request_id, exc)
                    seen = 1
                if self.sampler.hit(key.namespace, seen):
                    await self._put(job)
            elif (
                lookup.outcome == "miss"
                and lookup.candidate is not None
                and lookup.best_similarity is not None
                and self.sampler.near_miss(lookup.best_similarity, lookup.threshold)
            ):
                job = _job(
                    request_id, key, lookup.candidate, lookup.best_similarity, lookup.threshold
                )
                job = job.model_copy(update={"near_miss": True})
                await self._put(job)
        except LedgerError as exc:
            self._failed("lookup not counted", request_id, exc)

    def _failed(self, what: str, request_id: str, exc: Exception) -> None:
        self.errors += 1
        self.observer.cache_error("audit")
        log.warning("audit: %s request_id=%s: %s", what, request_id, type(exc).__name__)

    async def _put(self, job: AuditJob) -> None:
        """Queue ``job``, or spill it (behind any already spilled: order is kept). While the
        queue refuses, new jobs go straight to the spill: only the retry loop knocks, once a
        second, instead of every request waiting on a dead connection."""
        if self.spill and time.monotonic() - self._refused_at >= SPILL_RETRY_S:
            await self.requeue()  # the queue may be back: what waits goes first
        if not self.spill:
            try:
                await self.queue.put(job)
                self.observer.job_queued(job)
                return
            except QueueError as exc:
                self._refused_at = time.monotonic()
                self._failed("job spilled, queue unreachable", job.request_id, exc)
        if self.settings.spill_max == 0:
            self.spill_dropped += 1
            return
        if len(self.spill) >= self.settings.spill_max:
            self.spill.popleft()
            self.spill_dropped += 1
        self.spill.append(job)

    async def requeue(self) -> int:
        """Queue spilled jobs, oldest first, until the queue refuses one; how many went."""
        sent = 0
        async with self._requeueing:
            while self.spill:
                try:
                    await self.queue.put(self.spill[0])
                except QueueError:
                    self._refused_at = time.monotonic()
                    break
                self.observer.job_queued(self.spill.popleft())
                sent += 1
        if sent:
            log.info("audit: %d spilled jobs queued, %d still spilled", sent, len(self.spill))
        return sent

    async def _requeue_forever(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), SPILL_RETRY_S)
            if self.spill:
                await self.requeue()

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
            with contextlib.suppress(StoreError):  # else it stays pending (never served)
                await self.store.discard(key.scope, entry.id)


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
