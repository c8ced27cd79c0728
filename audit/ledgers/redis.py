"""Redis ledger.

vc:{audit}:verdict:<id>    string: the verdict as JSON
vc:{audit}:verdicts        sorted set: verdict ids by time (retention trims the oldest)
vc:{audit}:judged:<job id> string, set once: the job already has a judge verdict
vc:served:<ref>            string with TTL: a served hit, for feedback (ref: tenant, key and
                           request id, hashed: ``Served.ref``)
vc:hits:<entry id>         counter with TTL: times the entry was served (burn-in, all replicas)
vc:{audit}:hardneg         hash: pair id -> hard negative as JSON
vc:{audit}:hardnegs        sorted set: pair ids by time (retention trims the oldest)
vc:sim:<ns>:<hour>         hash with TTL: lookups per similarity bin in that hour (tuning)

The ``{audit}`` hash tag puts verdicts and hard negatives in one slot of a Redis Cluster:
recording a verdict is one script over three of those keys, and reading them back is one
MGET/HMGET. The keys without a tag are only ever touched one at a time.
"""

from __future__ import annotations

import time
from typing import Any, cast

from audit.errors import LedgerError
from audit.ledgers.base import LOOKUP_HISTORY_H, Ledger, Served, similarity_bin
from audit.schema import HardNegative, Verdict, VerdictKind
from cache.redis_client import RedisClient, as_text, close, connect, redis_errors

TAG = "vc:{audit}:"
INDEX = f"{TAG}verdicts"
HARD = f"{TAG}hardneg"
HARD_INDEX = f"{TAG}hardnegs"
JUDGED_TTL_S = 7 * 86400

# One atomic step: mark the job judged (only if it was not), store the verdict, index it.
# Done as separate commands, a worker killed between the mark and the store would leave a
# job marked judged with no verdict, and the redelivered job would then be dropped.
RECORD = """
if ARGV[4] == '1' and not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[5]) then
  return -1
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
return redis.call('ZCARD', KEYS[3])
"""


# Take the role if nobody holds it, renew it if we do; one atomic step.
LEAD = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
return 0
"""


def _verdict_key(verdict_id: str) -> str:
    return f"{TAG}verdict:{verdict_id}"


class RedisLedger(Ledger):
    """Verdicts in Redis, shared by every gateway and worker."""

    def __init__(self, url: str, retention: int = 100_000, *, cluster: bool = False) -> None:
        self._redis: RedisClient = connect(url, cluster=cluster)
        self.retention = retention
        self._record = self._redis.register_script(RECORD)
        self._lead = self._redis.register_script(LEAD)

    async def close(self) -> None:
        await close(self._redis)

    async def record(self, verdict: Verdict) -> bool:
        with redis_errors(LedgerError):
            size = int(
                await self._record(
                    keys=[f"{TAG}judged:{verdict.job.job_id}", _verdict_key(verdict.id), INDEX],
                    args=[
                        verdict.id,
                        verdict.model_dump_json(),
                        repr(verdict.created_at),
                        "1" if verdict.source == "judge" else "0",
                        JUDGED_TTL_S,
                    ],
                )
            )
            if size < 0:
                return False
            dropped = await self._over_retention(INDEX, int(size))
            if dropped:
                await self._redis.delete(*(_verdict_key(i) for i in dropped))
        return True

    async def _over_retention(self, index: str, size: int) -> list[str]:
        """Pop the oldest ids of ``index`` past the retention; the caller drops their data."""
        if size <= self.retention:
            return []
        oldest = cast(
            list[tuple[bytes, float]], await self._redis.zpopmin(index, size - self.retention)
        )
        return [as_text(i) for i, _ in oldest]

    async def get(self, verdict_id: str) -> Verdict | None:
        with redis_errors(LedgerError):
            raw = await self._redis.get(_verdict_key(verdict_id))
        return Verdict.model_validate_json(raw) if raw else None

    async def query(
        self,
        *,
        namespace: str | None = None,
        verdict: VerdictKind | None = None,
        since: float = 0.0,
        limit: int | None = 100,
    ) -> list[Verdict]:
        with redis_errors(LedgerError):
            ids = await self._redis.zrevrangebyscore(INDEX, "+inf", since)
            found: list[Verdict] = []
            for start in range(0, len(ids), 500):
                batch = ids[start : start + 500]
                raws = await self._redis.mget([_verdict_key(as_text(i)) for i in batch])
                for raw in raws:
                    if raw is None:
                        continue
                    item = Verdict.model_validate_json(raw)
                    if (namespace is None or item.job.namespace == namespace) and (
                        verdict is None or item.verdict == verdict
                    ):
                        found.append(item)
                if limit is not None and len(found) >= limit:
                    return found[:limit]
        return found

    async def remember(self, served: Served, ttl_s: int) -> int:
        job = served.job
        hits = f"vc:hits:{job.entry_id}"
        with redis_errors(LedgerError):
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(f"vc:served:{served.ref}", served.model_dump_json(), ex=ttl_s)
                pipe.incr(hits)
                pipe.expire(hits, ttl_s)
                _count_lookup(pipe, job.namespace, similarity_bin(job.similarity))
                _, seen, *_ = await pipe.execute()
        return int(seen)

    async def served(self, ref: str) -> Served | None:
        with redis_errors(LedgerError):
            raw = await self._redis.get(f"vc:served:{ref}")
        return Served.model_validate_json(raw) if raw else None

    async def add_hard_negative(self, pair: HardNegative) -> None:
        with redis_errors(LedgerError):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(HARD, pair.pair_id, pair.model_dump_json())
                pipe.zadd(HARD_INDEX, {pair.pair_id: pair.created_at})
                pipe.zcard(HARD_INDEX)
                *_, size = await pipe.execute()
            dropped = await self._over_retention(HARD_INDEX, int(size))
            if dropped:
                await self._redis.hdel(HARD, *dropped)

    async def drop_hard_negative(self, pair_id: str) -> None:
        with redis_errors(LedgerError):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hdel(HARD, pair_id)
                pipe.zrem(HARD_INDEX, pair_id)
                await pipe.execute()

    async def hard_negatives(
        self, *, namespace: str | None = None, limit: int | None = 1000
    ) -> list[HardNegative]:
        with redis_errors(LedgerError):
            ids = await self._redis.zrevrange(HARD_INDEX, 0, -1)
            found: list[HardNegative] = []
            for start in range(0, len(ids), 500):
                raws = await self._redis.hmget(HARD, [as_text(i) for i in ids[start : start + 500]])
                for raw in raws:
                    if raw is None:
                        continue
                    pair = HardNegative.model_validate_json(raw)
                    if namespace is None or pair.namespace == namespace:
                        found.append(pair)
                if limit is not None and len(found) >= limit:
                    return found[:limit]
        return found

    async def lead(self, role: str, owner: str, ttl_s: int) -> bool:
        with redis_errors(LedgerError):
            return bool(await self._lead(keys=[f"vc:lead:{role}"], args=[owner, ttl_s]))

    async def count_lookup(self, namespace: str, similarity_bin: int) -> None:
        with redis_errors(LedgerError):
            async with self._redis.pipeline(transaction=False) as pipe:
                _count_lookup(pipe, namespace, similarity_bin)
                await pipe.execute()

    async def lookup_bins(self, namespace: str, hours: int) -> dict[int, int]:
        hour = int(time.time() // 3600)
        with redis_errors(LedgerError):
            async with self._redis.pipeline(transaction=False) as pipe:
                for at in range(hour - hours + 1, hour + 1):
                    pipe.hgetall(f"vc:sim:{namespace}:{at}")
                found = await pipe.execute()
        total: dict[int, int] = {}
        for bins in found:
            for b, count in bins.items():
                total[int(as_text(b))] = total.get(int(as_text(b)), 0) + int(count)
        return total


def _count_lookup(pipe: Any, namespace: str, similarity_bin: int) -> None:
    """Queue the commands that count one lookup in this hour's histogram."""
    key = f"vc:sim:{namespace}:{int(time.time() // 3600)}"
    pipe.hincrby(key, str(similarity_bin), 1)
    pipe.expire(key, LOOKUP_HISTORY_H * 3600)
