"""The audit worker: take a job, judge it, record the verdict once, act, acknowledge."""

from __future__ import annotations

import asyncio
import logging
import time

from audit.judges.base import Judge
from audit.ledgers.base import Ledger, LedgerError
from audit.queues.base import Delivery, JobQueue, QueueError
from audit.schema import Verdict
from audit.settings import AuditSettings
from cache.stores.base import Store, StoreError

log = logging.getLogger("vetcache.audit")


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
    ) -> None:
        self.name = name
        self.queue = queue
        self.judge = judge
        self.ledger = ledger
        self.store = store
        self.settings = settings
        self.processed = 0

    async def process(self, delivery: Delivery) -> Verdict:
        """Judge one delivery. The verdict is recorded before the acknowledgement, so a
        worker that dies in between leaves the job to be delivered again, and the ledger
        drops the second verdict."""
        job = delivery.job
        judgement = await self.judge.judge(job)
        verdict = Verdict(
            id=job.job_id,
            job=job,
            verdict=judgement.verdict,
            score=judgement.score,
            reason=judgement.reason,
            judge=judgement.judge,
            created_at=time.time(),
        )
        if await self.ledger.record(verdict):
            await self._act(verdict)
        await self.queue.ack(delivery.id)
        self.processed += 1
        return verdict

    async def _act(self, verdict: Verdict) -> None:
        job = verdict.job
        if verdict.verdict != "false_positive" or job.near_miss:
            return
        action = self.settings.action_for(job.namespace)
        try:
            if action == "raise":
                bar = min(1.0, job.similarity + self.settings.raise_margin)
                await self.store.guard(job.scope, job.entry_id, min_similarity=bar)
            elif action == "quarantine":
                await self.store.guard(job.scope, job.entry_id, quarantine=True)
        except StoreError as exc:
            log.warning("could not %s entry %s: %s", action, job.entry_id, type(exc).__name__)

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
            except (QueueError, LedgerError) as exc:
                log.warning("audit worker %s: %s; retrying", self.name, type(exc).__name__)
                await asyncio.sleep(1.0)
