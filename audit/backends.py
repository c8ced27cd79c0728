"""The audit path's queue and ledger, on Redis or in-process: one place that builds them,
for the gateway's auditor, the standalone worker and ``vetcache tune``."""

from __future__ import annotations

from audit.ledgers.base import Ledger
from audit.queues.base import JobQueue
from audit.settings import AuditSettings


def build_queue_and_ledger(
    settings: AuditSettings, redis_url: str | None, *, redis_cluster: bool = False
) -> tuple[JobQueue, Ledger]:
    """A Redis Stream and Redis ledger with ``redis_url`` (on a Redis Cluster with
    ``redis_cluster``), else in-process ones."""
    if redis_url:
        from audit.ledgers.redis import RedisLedger
        from audit.queues.redis import RedisStreamQueue

        return (
            RedisStreamQueue(
                redis_url,
                reclaim_after_s=settings.reclaim_after_s,
                consumer_idle_s=settings.consumer_idle_s,
                cluster=redis_cluster,
            ),
            RedisLedger(redis_url, settings.retention, cluster=redis_cluster),
        )
    from audit.ledgers.memory import MemoryLedger
    from audit.queues.memory import MemoryQueue

    return MemoryQueue(), MemoryLedger(settings.retention)
