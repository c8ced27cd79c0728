"""The audit worker: take a job, judge it, record the verdict once, act, acknowledge."""

from __future__ import annotations

import asyncio
import logging
import time

from opentelemetry import trace
from opentelemetry.util.types import Attributes

from audit.actions import act_on, settle
from audit.errors import AuditError
from audit.judges.base import Judge
from audit.ledgers.base import Ledger
from audit.observe import NULL_AUDIT_OBSERVER, AuditObserver
from audit.queues.base import Delivery, JobQueue
from audit.schema import AuditJob, Verdict, job_kind
from audit.settings import AuditSettings
from audit.trace_context import link_to
from cache.stores.base import Store

log = logging.getLogger("vetcache.audit")
_TRACER = trace.get_tracer("vetcache.audit")
"""The process's provider (``proxy.tracing.install``); a no-op one when tracing is off."""


def _judged(job: AuditJob) -> Attributes:
    return {
        "vetcache.job_id": job.job_id,
        "vetcache.request_id": job.request_id,
        "vetcache.job_kind": job_kind(job),
        "vetcache.namespace": job.namespace,
        "vetcache.entry_id": job.entry_id,
        "vetcache.similarity": job.similarity,
    }


class AuditWorker:
    """One consumer of the audit queue. Several may run at once (they share the stream's
    consumer group); each job is judged and counted once."""

    def __init__(
        self,
        name: str,
        queue: JobQueue,
        judge: Judge,
        ledger: Ledger,
        store: Store,
        settings: AuditSettings,
        observer: AuditObserver = NULL_AUDIT_OBSERVER,
    ) -> None:
        self.observer = observer
        self.name = name
        self.queue = queue
        self.judge = judge
        self.ledger = ledger
        self.store = store
        self.settings = settings
        self.processed = 0

    async def process(self, delivery: Delivery) -> Verdict:
        """Judge one delivery. The verdict is recorded, then acted on, then the job is
        acknowledged: a worker that dies anywhere in between leaves the job to be delivered
        again; the redelivery finds the recorded verdict, is not judged again, and repeats
        the (idempotent) action, so no action is lost either."""
        job = delivery.job
        earlier = await self.ledger.get(job.job_id)
        if earlier is not None:
            await act_on(earlier, self.store, self.ledger, self.settings)
            await self.queue.ack(delivery.id)
            return earlier
        # Its own trace, linked to the request's (the judging happens later, elsewhere).
        with (
            _TRACER.start_as_current_span(
                "vetcache.judge", links=link_to(job.traceparent), attributes=_judged(job)
            ) as span,
            self.observer.timed("judge"),
        ):
            judgement = await self.judge.judge(job)
            span.set_attribute("vetcache.verdict", judgement.verdict)
        verdict = Verdict(
            id=job.job_id,
            job=job,
            verdict=judgement.verdict,
            score=judgement.score,
            reason=judgement.reason,
            judge=judgement.judge,
            created_at=time.time(),
        )
        verdict = await settle(verdict, self.ledger, self.store, self.settings, self.observer)
        await self.queue.ack(delivery.id)
        self.processed += 1
        return verdict

    async def run_once(self, block_s: float = 1.0) -> int:
        """Take and judge one batch; the number judged."""
        deliveries = await self.queue.take(self.name, self.settings.worker_batch, block_s)
        for delivery in deliveries:
            await self.process(delivery)
        return len(deliveries)

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, riding out queue and ledger outages."""
        while not stop.is_set():
            try:
                await self.run_once()
            except AuditError as exc:
                log.warning("audit worker %s: %s; retrying", self.name, type(exc).__name__)
                await asyncio.sleep(1.0)
