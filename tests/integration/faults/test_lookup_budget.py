"""The lookup budget against a real Redis Stack: redis-py swallowing the deadline's
cancellation no longer lets a lookup run on, and a Redis that stops answering holds no lookup
past the budget; the cache serves again after."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from cache import Outcome
from cache.embedder import HashEmbedder
from cache.semantic import SemanticCache
from cache.settings import CacheSettings
from cache.stores.redis import RedisStore
from tests.integration.faults.rig import RedisServer
from tests.unit.test_lookup_budget import SleepyModel
from tests.unit.test_semantic_cache import ANSWER, body

pytestmark = pytest.mark.integration

BUDGET_MS = 50
SLACK_S = 0.4  # under pytest the loop stalls for up to ~0.27 s now and then while Redis is
# paused (all clients at once; not seen outside pytest: likely the ResourceWarnings of the
# connections redis-py drops, raised as errors in __del__ here); the stalls tested below are
# 1.5 s and 0.5 s long


async def test_a_swallowed_cancellation_does_not_let_a_lookup_run_on(redis_url: str) -> None:
    """A 1 ms budget on misses, behind a model that takes 0.5 s a text: cancelling redis-py
    mid-command sometimes does not end its call (39 to 146 of 1,000 ran on); before, such a
    lookup then went on to embed with no deadline and returned 0.5 s late."""
    model = SleepyModel(cost_s=0.5)
    cache = SemanticCache(CacheSettings(lookup_budget_ms=1), RedisStore(redis_url), model)
    await cache.open()
    seconds: list[float] = []
    for i in range(300):
        key = cache.key(body(f"swallowed {i} {time.time()}"), "t", "budget")
        started = time.perf_counter()
        await cache.lookup(key, 0.9)
        seconds.append(time.perf_counter() - started)
    late = [round(s, 3) for s in seconds if s > SLACK_S]
    assert not late, f"{len(late)} of 300 lookups ran on: {late[:10]}"
    await cache.close()


async def test_lookups_hold_their_budget_while_redis_is_paused(
    own_redis: Callable[..., RedisServer],
) -> None:
    """SIGSTOP to Redis for 1.5 s while 8 clients look up (exact repeats and misses): no
    lookup waits for Redis, those during the pause fail open, the entry is hit again after
    SIGCONT, and no abandoned lookup outlives the cache. (A guard: ``asyncio.timeout`` held
    here too, a stopped Redis' socket read being cancellable.)"""
    server = own_redis()
    store = RedisStore(server.url, timeout_s=5.0)  # Redis' own timeout is no help here
    cache = SemanticCache(CacheSettings(lookup_budget_ms=BUDGET_MS), store, HashEmbedder())
    await cache.open()
    key = cache.key(body(), "t", "budget")
    await cache.admit(key, None, ANSWER)
    seconds: list[float] = []
    outcomes: list[Outcome] = []
    stop_at = time.monotonic() + 3.0

    async def client(n: int) -> None:
        i = 0
        while time.monotonic() < stop_at:
            text = "What is six times seven?" if i % 2 else f"question {n} {i}"
            started = time.perf_counter()
            lookup = await cache.lookup(cache.key(body(text), "t", "budget"), 0.9)
            seconds.append(time.perf_counter() - started)
            outcomes.append(lookup.outcome)
            i += 1
            await asyncio.sleep(0.005)

    clients = asyncio.gather(*(client(n) for n in range(8)))
    await asyncio.sleep(0.5)
    server.pause()
    try:
        await asyncio.sleep(1.5)
    finally:
        server.resume()
    await clients
    print(f"{len(seconds)} lookups, slowest {max(seconds) * 1000:.1f} ms, "
          f"{outcomes.count(Outcome.FAIL_OPEN)} fail_open")  # fmt: skip
    assert max(seconds) < BUDGET_MS / 1000 + SLACK_S
    assert Outcome.FAIL_OPEN in outcomes and Outcome.HIT in outcomes
    assert outcomes[-20:].count(Outcome.FAIL_OPEN) < 20  # back after SIGCONT
    assert (await cache.lookup(key, 0.9)).outcome == Outcome.HIT
    await cache.close()
    assert cache.deadlines.abandoned == 0
