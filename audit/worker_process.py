"""A standalone audit worker (``vetcache audit-worker``): the queue, ledger, store and judge
on one Redis, judging until told to stop. The CLI adds signals, logging and metrics."""

from __future__ import annotations

import asyncio
import logging

from audit.backends import build_queue_and_ledger
from audit.errors import QueueError, QueueUnusable
from audit.judges import build_judge
from audit.observe import AuditObserver
from audit.settings import AuditSettings
from audit.worker import AuditWorker
from cache.stores.redis import RedisStore

log = logging.getLogger("vetcache.audit")


async def serve_worker(
    settings: AuditSettings,
    redis_url: str,
    *,
    name: str,
    stop: asyncio.Event,
    observer: AuditObserver,
    cluster: bool = False,
) -> None:
    """Judge jobs from the shared stream until ``stop`` is set. A Redis that is not up yet
    is waited for (the run loop creates the consumer group once it answers); a queue that
    can never work (``QueueUnusable``) raises at once."""
    queue, ledger = build_queue_and_ledger(settings, redis_url, redis_cluster=cluster)
    store = RedisStore(redis_url, cluster=cluster)
    judge = build_judge(settings)
    worker = AuditWorker(name, queue, judge, ledger, store, settings, observer)
    try:
        try:
            await queue.open()
        except QueueUnusable:
            raise
        except QueueError as exc:  # Redis not up yet: the run loop retries
            log.warning("audit queue unreachable at start, retrying: %s", type(exc).__name__)
        log.info("audit worker %s started", name)
        await worker.run(stop)
    finally:
        await judge.aclose()
        await queue.close()
        await ledger.close()
        await store.close()
