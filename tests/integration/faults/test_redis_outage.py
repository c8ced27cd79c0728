"""Redis stopped, or paused past the lookup budget, while four clients ask: the upstream
answers meanwhile, the cache serves again afterwards, entries are whole and hits judged."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.faults.checks import assert_answered, assert_entries_whole, wait_judged
from tests.integration.faults.rig import Gateway, RedisServer
from tests.integration.faults.traffic import QUESTIONS, during, hits, summary, under_load, until_hit

pytestmark = pytest.mark.integration


async def test_redis_stopped_and_restarted_under_load(
    own_redis: Callable[..., RedisServer],
    gateway: Callable[..., Gateway],
    audit_worker: Callable[[Path], subprocess.Popen[bytes]],
) -> None:
    """SIGTERM to Redis (no persistence: it comes back empty) and a restart on the same
    port while 4 clients ask: every request is answered 200 by the upstream, the cache
    serves again (its index rebuilt), every entry is whole, and every hit served before
    the stop was judged."""
    server = own_redis()
    gw = gateway(server.url)
    worker = audit_worker(gw.config)
    async with under_load(gw) as replies:
        await until_hit(gw.url, gw.namespace, QUESTIONS[0])
        await asyncio.sleep(1)
        before = hits(replies)  # answered, so their audit jobs are on their way
        assert len(await wait_judged(server.url, gw.namespace, before, worker)) == len(before)
        await asyncio.to_thread(server.stop)
        stopped = time.monotonic()
        await asyncio.sleep(2)
        starting = time.monotonic()  # Redis listens before start() returns: the outage is
        await asyncio.to_thread(server.start)  # certain only until start() is called
        restarted = time.monotonic()
        back = await until_hit(gw.url, gw.namespace, QUESTIONS[0])
        await asyncio.sleep(1)
    print(f"redis restart: {summary(replies)}; hit again {back.started - restarted:.2f}s "
          f"after the restart; {len(before)} hits judged before the stop")  # fmt: skip
    assert_answered(replies)
    outage = during(replies, stopped, starting)
    assert outage, "no request was sent while Redis was down"
    assert {r.cache for r in outage} == {"fail_open"}  # failed open, never a hit from nowhere
    assert max(r.seconds for r in replies) < 10
    assert hits([r for r in replies if r.started > restarted])
    assert assert_entries_whole(server)


async def test_redis_paused_past_the_lookup_budget(
    own_redis: Callable[..., RedisServer],
    gateway: Callable[..., Gateway],
    audit_worker: Callable[[Path], subprocess.Popen[bytes]],
) -> None:
    """SIGSTOP to Redis for 3 s under load (a Redis slower than the 200 ms lookup budget),
    then SIGCONT: requests meanwhile are answered by the upstream (``x-vetcache: fail_open``)
    without waiting for Redis, hits resume, entries are whole, and every hit is judged."""
    server = own_redis()
    gw = gateway(server.url)
    worker = audit_worker(gw.config)
    async with under_load(gw) as replies:
        await until_hit(gw.url, gw.namespace, QUESTIONS[0])
        await asyncio.sleep(1)
        server.pause()
        paused = time.monotonic()
        try:
            await asyncio.sleep(3)
        finally:
            server.resume()  # a stopped process would not even die when the test ends
        resumed = time.monotonic()
        back = await until_hit(gw.url, gw.namespace, QUESTIONS[0])
        await asyncio.sleep(1)
    stalled = during(replies, paused, resumed)
    print(f"redis paused: {summary(replies)}; during the pause {summary(stalled)}, slowest "
          f"{max(r.seconds for r in stalled):.2f}s; hit again {back.started - resumed:.2f}s "
          "after SIGCONT")  # fmt: skip
    assert_answered(replies)
    assert stalled, "no request was answered while Redis was paused"
    assert {r.cache for r in stalled} == {"fail_open"}
    assert max(r.seconds for r in replies) < 10
    assert hits([r for r in replies if r.started > resumed])
    assert assert_entries_whole(server)
    served = hits(replies) | {back.request_id}
    assert len(await wait_judged(server.url, gw.namespace, served, worker)) == len(served)
