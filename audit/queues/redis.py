"""Redis Stream queue: ``vc:audit:jobs`` with the consumer group ``auditors``.

Several ``vetcache audit-worker`` processes share the group; each job goes to one of them.
A worker that dies leaves its jobs pending; ``take`` claims jobs idle past
``reclaim_after_s`` (XAUTOCLAIM) before reading new ones, so no job is lost. Delivery is
at-least-once; the verdict store records one judge verdict per job id.

Consumers stay registered in the group after their worker is gone; ``take`` removes, at most
once per ``PRUNE_EVERY_S``, those idle past ``consumer_idle_s`` with no pending job (a dead
worker's jobs are reclaimed by the others first, so none is dropped with its consumer). The
check and the removal are one script, so a consumer cannot take a job in between.
"""

from __future__ import annotations

import logging
import time
from typing import Any, cast

from redis.exceptions import ResponseError

from audit.errors import QueueError, QueueUnusable
from audit.queues.base import Delivery, JobQueue
from audit.schema import AuditJob
from cache.redis_client import (
    RedisClient,
    as_text,
    close,
    connect,
    redis_errors,
    topology_mismatch,
)
from cache.redis_replies import is_group_exists, is_missing_group

STREAM = "vc:audit:jobs"
GROUP = "auditors"
MAX_LENGTH = 1_000_000
PRUNE_EVERY_S = 60.0
"""How often a queue looks for idle consumers to remove (at most)."""

# KEYS[1] stream, ARGV[1] group, ARGV[2] idle ms: remove the group's consumers idle that long
# with no pending entry; their names.
PRUNE = """
local removed = {}
for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local fields = {}
  for i = 1, #consumer, 2 do fields[consumer[i]] = consumer[i + 1] end
  if tonumber(fields['pending']) == 0 and tonumber(fields['idle']) >= tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], fields['name'])
    table.insert(removed, fields['name'])
  end
end
return removed
"""

log = logging.getLogger("vetcache.audit.queue")


class RedisStreamQueue(JobQueue):
    """Jobs on a Redis Stream, consumed by a consumer group."""

    def __init__(
        self,
        url: str,
        *,
        reclaim_after_s: float = 60.0,
        consumer_idle_s: float = 3600.0,
        cluster: bool = False,
    ) -> None:
        self.url = url
        self._redis: RedisClient = connect(url, cluster=cluster)
        self.reclaim_after_ms = int(reclaim_after_s * 1000)
        self.consumer_idle_ms = int(consumer_idle_s * 1000)
        self._prune = self._redis.register_script(PRUNE)
        self._next_prune = 0.0

    async def open(self) -> None:
        with redis_errors(QueueError):
            mismatch = await topology_mismatch(self._redis, self.url)
            if mismatch:
                raise QueueUnusable(mismatch)
            try:
                await self._redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if not is_group_exists(exc):
                    raise

    async def close(self) -> None:
        await close(self._redis)

    async def put(self, job: AuditJob) -> None:
        with redis_errors(QueueError):
            await self._redis.xadd(
                STREAM, {"job": job.model_dump_json()}, maxlen=MAX_LENGTH, approximate=True
            )

    async def take(self, consumer: str, count: int, block_s: float) -> list[Delivery]:
        with redis_errors(QueueError):
            try:
                entries = await self._entries(consumer, count, block_s)
            except ResponseError as exc:
                if not is_missing_group(exc):
                    raise
                # Redis came back without the stream: create the group again (from the start
                # of whatever gateways queued since) instead of failing until a restart.
                await self.open()
                return []
        return [
            Delivery(id=as_text(entry_id), job=AuditJob.model_validate_json(fields[b"job"]))
            for entry_id, fields in entries
            if fields and b"job" in fields
        ]

    async def prune_consumers(self) -> list[str]:
        """Remove the consumers idle past ``consumer_idle_s`` with no pending job; their
        names."""
        with redis_errors(QueueError):
            return await self._prune_idle()

    async def _prune_idle(self) -> list[str]:
        removed = await self._prune(keys=[STREAM], args=[GROUP, self.consumer_idle_ms])
        names = [as_text(name) for name in removed or []]
        if names:
            log.info("removed %d idle audit consumers: %s", len(names), ", ".join(names))
        return names

    async def _entries(self, consumer: str, count: int, block_s: float) -> list[Any]:
        """Jobs idle past the reclaim timeout first, else new ones (waiting up to block_s);
        idle consumers removed once in a while, after the reclaim."""
        claimed = await self._redis.xautoclaim(
            STREAM, GROUP, consumer, min_idle_time=self.reclaim_after_ms, count=count
        )
        entries: list[Any] = list(claimed[1])
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + PRUNE_EVERY_S
            await self._prune_idle()
        if entries:
            return entries
        fresh = cast(
            list[Any],
            await self._redis.xreadgroup(
                GROUP, consumer, {STREAM: ">"}, count=count, block=int(block_s * 1000)
            ),
        )
        return [entry for _, stream_entries in fresh or [] for entry in stream_entries]

    async def ack(self, delivery_id: str) -> None:
        with redis_errors(QueueError):
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.xack(STREAM, GROUP, delivery_id)
                pipe.xdel(STREAM, delivery_id)
                await pipe.execute()

    async def depth(self) -> int:
        with redis_errors(QueueError):
            return int(await self._redis.xlen(STREAM))
