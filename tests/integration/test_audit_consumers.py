"""Audit stream consumers on a real Redis Stack: a dead worker's consumer leaves the group
once its jobs are reclaimed (beside ``test_audit_redis.py``, which is at the size limit)."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from audit import AuditWorker, build_queue_and_ledger
from audit.judges.contrast import ContrastJudge
from audit.queues.redis import GROUP, STREAM, RedisStreamQueue
from audit.settings import AuditSettings
from tests.integration.test_audit_redis import audit_backend, job

pytestmark = pytest.mark.integration


async def _consumers(redis_url: str) -> dict[str, int]:
    """The stream group's consumers and how many jobs each holds."""
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    try:
        rows = await client.xinfo_consumers(STREAM, GROUP)
    finally:
        await client.aclose()
    return {row["name"].decode(): int(row["pending"]) for row in rows}


async def test_dead_consumers_leave_the_group_once_their_jobs_are_reclaimed(
    redis_url: str,
) -> None:
    """Consumers of dead workers stayed registered in the stream group forever. One idle past
    ``consumer_idle_s`` with nothing in hand is removed by the next queue that reads; one that
    died holding jobs stays until the others reclaimed them, then goes too."""
    from redis.asyncio import Redis

    settings = AuditSettings(reclaim_after_s=0.5, consumer_idle_s=1.0, worker_batch=50)
    tag = uuid.uuid4().hex[:8]
    empty, doomed = f"gone-empty-{tag}", f"gone-holding-{tag}"
    async with audit_backend(settings, redis_url) as (queue, ledger, store):
        client = Redis.from_url(redis_url)
        await client.xgroup_createconsumer(STREAM, GROUP, empty)  # a worker that read nothing
        await client.aclose()
        namespace = uuid.uuid4().hex
        for _ in range(3):
            await queue.put(job(namespace))
        assert await queue.take(doomed, 50, 1.0), "the doomed worker got jobs"
        await asyncio.sleep(1.2)  # both idle past consumer_idle_s and the reclaim timeout
        restarted, _ = build_queue_and_ledger(settings, redis_url)
        await restarted.open()
        try:
            await restarted.take(f"fresh-{tag}", 1, 0.05)  # reads after reclaiming: prunes
        finally:
            await restarted.close()
        consumers = await _consumers(redis_url)
        assert empty not in consumers
        assert consumers[doomed] > 0  # kept while it holds jobs
        survivor = AuditWorker(f"survivor-{tag}", queue, ContrastJudge(), ledger, store, settings)
        deadline = time.monotonic() + 10
        while len(await ledger.query(namespace=namespace, limit=None)) < 3 or (
            await _consumers(redis_url)
        ).get(doomed):
            assert time.monotonic() < deadline, "the dead worker's jobs were not reclaimed"
            await survivor.run_once(block_s=0.2)
        await asyncio.sleep(1.2)
        assert doomed in await _consumers(redis_url)  # nothing removed it yet
        assert isinstance(queue, RedisStreamQueue)
        removed = await queue.prune_consumers()
        consumers = await _consumers(redis_url)
        assert doomed in removed and doomed not in consumers
        assert len(await ledger.query(namespace=namespace, limit=None)) == 3  # no job lost
