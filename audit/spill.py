"""Audit jobs the queue refuses (Redis down) wait in a bounded in-memory spill and are
queued again, in order, once the queue answers. Only a gateway that dies while Redis is
down, or a spill past ``audit.spill_max``, loses jobs."""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from collections.abc import Callable, Iterator

from audit.errors import QueueError
from audit.observe import AuditObserver
from audit.queues.base import JobQueue
from audit.schema import AuditJob
from cache.periodic import Periodic

log = logging.getLogger("vetcache.audit")

RETRY_S = 1.0
"""How often spilled jobs are offered to the queue again."""


class Spill:
    """Puts jobs on ``queue``, holding what it refuses (at most ``limit``, oldest dropped
    first) until a retry, once a second, gets them through."""

    def __init__(
        self,
        queue: JobQueue,
        limit: int,
        observer: AuditObserver,
        on_refused: Callable[[AuditJob, QueueError], None],
    ) -> None:
        self.queue = queue
        self.limit = limit
        self.observer = observer
        self.on_refused = on_refused
        self.held: collections.deque[AuditJob] = collections.deque()
        self.dropped = 0
        """Jobs lost: dropped past the limit (or with a limit of 0)."""
        self._refused_at = -math.inf  # when the queue last refused a job (monotonic)
        self._requeueing = asyncio.Lock()  # the retry and a new job may both drain
        self._retry = Periodic("vetcache-spill", self._retry_once, RETRY_S, wait_first=True)

    def __len__(self) -> int:
        return len(self.held)

    def __iter__(self) -> Iterator[AuditJob]:
        return iter(self.held)

    def start(self) -> None:
        """Start retrying in the background."""
        self._retry.start()

    async def stop(self) -> None:
        """Stop retrying, and try once more for what is held."""
        await self._retry.stop()
        await self.requeue()
        if self.held:
            log.warning("audit jobs lost at shutdown: %d (queue unreachable)", len(self.held))

    async def put(self, job: AuditJob) -> None:
        """Queue ``job``, or hold it (behind any already held: order is kept). While the queue
        refuses, new jobs are held at once: only the retry knocks, once a second, instead of
        every request waiting on a dead connection."""
        if self.held and time.monotonic() - self._refused_at >= RETRY_S:
            await self.requeue()  # the queue may be back: what waits goes first
        if not self.held:
            try:
                await self.queue.put(job)
                self.observer.job_queued(job)
                return
            except QueueError as exc:
                self._refused_at = time.monotonic()
                self.on_refused(job, exc)
        if self.limit == 0:
            self.dropped += 1
            return
        if len(self.held) >= self.limit:
            self.held.popleft()
            self.dropped += 1
        self.held.append(job)

    async def requeue(self) -> int:
        """Queue held jobs, oldest first, until the queue refuses one; how many went."""
        sent = 0
        async with self._requeueing:
            while self.held:
                try:
                    await self.queue.put(self.held[0])
                except QueueError:
                    self._refused_at = time.monotonic()
                    break
                self.observer.job_queued(self.held.popleft())
                sent += 1
        if sent:
            log.info("audit: %d spilled jobs queued, %d still spilled", sent, len(self.held))
        return sent

    async def _retry_once(self) -> None:
        if self.held:
            await self.requeue()
