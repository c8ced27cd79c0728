"""Audit jobs through a Redis outage: hits served before it and after it are all judged,
and take feedback; a running worker keeps judging after Redis lost its data."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import LOGS, child_log
from tests.integration.faults.checks import assert_answered, assert_entries_whole, wait_judged
from tests.integration.faults.rig import Gateway, RedisServer
from tests.integration.faults.traffic import (
    QUESTIONS,
    Reply,
    ask,
    hits,
    jobs_queued,
    load,
    summary,
    until_hit,
)

pytestmark = pytest.mark.integration


async def outage_with_hits(
    server: RedisServer, gw: Gateway
) -> tuple[list[Reply], list[Reply], list[Reply]]:
    """Hits (their jobs queued), Redis stopped, requests, Redis restarted (with its data),
    hits again: the replies before, during and after the outage."""
    done, outage = asyncio.Event(), list[Reply]()
    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as http:
        before = [await ask(http, gw.namespace, q) for q in QUESTIONS[:4]]
        for _ in range(3):
            before += await asyncio.gather(*(ask(http, gw.namespace, q) for q in QUESTIONS[:4]))
        deadline = time.monotonic() + 30
        while await jobs_queued(gw.url) < len(hits(before)):
            assert time.monotonic() < deadline, "the hits' audit jobs were never queued"
            await asyncio.sleep(0.1)
        await asyncio.to_thread(server.stop)
        running = asyncio.create_task(load(gw.url, gw.namespace, done, outage, clients=2))
        await asyncio.sleep(2)
        done.set()
        await running
        await asyncio.to_thread(server.start)
        after = [await until_hit(gw.url, gw.namespace, QUESTIONS[0])]
        for _ in range(3):
            after += await asyncio.gather(*(ask(http, gw.namespace, q) for q in QUESTIONS[:4]))
    return before, outage, after


async def test_audit_jobs_queued_before_a_redis_outage_are_judged_after_it(
    own_redis: Callable[..., RedisServer],
    gateway: Callable[..., Gateway],
    audit_worker: Callable[[Path], subprocess.Popen[bytes]],
) -> None:
    """Audits sample every hit; Redis (with persistence) is stopped and restarted. Every
    hit served before the outage is judged by a worker started after it; while Redis is
    down no hit is served (every lookup fails open), so no audit job is due then."""
    server = own_redis(persist=True)
    gw = gateway(server.url)
    before, outage, after = await outage_with_hits(server, gw)
    worker = audit_worker(gw.config)
    wanted = hits(before)
    verdicts = await wait_judged(server.url, gw.namespace, wanted, worker)
    print(f"audit outage: before {summary(before)}; during {summary(outage)}; after "
          f"{summary(after)}; {len(verdicts)}/{len(wanted)} earlier hits judged")  # fmt: skip
    assert wanted
    assert verdicts == wanted
    assert outage
    assert {r.cache for r in outage} == {"fail_open"}
    assert_answered(before + outage + after)
    assert len(assert_entries_whole(server)) >= 4


async def test_hits_served_once_redis_is_back_are_all_judged(
    own_redis: Callable[..., RedisServer],
    gateway: Callable[..., Gateway],
    audit_worker: Callable[[Path], subprocess.Popen[bytes]],
) -> None:
    """The first hits after the restart find the gateway's pooled ledger and queue
    connections dead (the first command on each fails); their jobs still reach the worker
    (the auditor spills them and queues them again)."""
    server = own_redis(persist=True)
    gw = gateway(server.url)
    _, _, after = await outage_with_hits(server, gw)
    worker = audit_worker(gw.config)
    wanted = hits(after)
    verdicts = await wait_judged(server.url, gw.namespace, wanted, worker, within_s=30)
    log = LOGS[gw.process.pid].read_text(errors="replace").splitlines()
    failed = [line for line in log if "WARNING" in line or "ERROR" in line]
    print(f"after the outage: {summary(after)}; {len(verdicts)}/{len(wanted)} judged; "
          f"{len(failed)} warnings or errors logged")  # fmt: skip
    assert verdicts == wanted, "\n".join(failed)


async def test_hits_served_once_redis_is_back_take_feedback(
    own_redis: Callable[..., RedisServer], gateway: Callable[..., Gateway]
) -> None:
    server = own_redis(persist=True)
    gw = gateway(server.url)
    _, _, after = await outage_with_hits(server, gw)
    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as http:
        labels = [
            await http.post("/v1/feedback", json={"request_id": r.request_id, "correct": True})
            for r in after
            if r.cache == "hit"
        ]
    refused = [r.json()["error"]["code"] for r in labels if r.status_code != 200]
    print(f"feedback after the outage: {len(labels)} hits labelled, refused: {refused}")
    assert not refused


async def test_a_running_worker_judges_jobs_queued_after_redis_lost_its_data(
    own_redis: Callable[..., RedisServer],
    gateway: Callable[..., Gateway],
    audit_worker: Callable[[Path], subprocess.Popen[bytes]],
) -> None:
    server = own_redis()
    gw = gateway(server.url)
    worker = audit_worker(gw.config)
    await until_hit(gw.url, gw.namespace, QUESTIONS[0])
    await asyncio.to_thread(server.stop)
    await asyncio.to_thread(server.start)
    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as http:
        first = await until_hit(gw.url, gw.namespace, QUESTIONS[0])
        after = [first, *[await ask(http, gw.namespace, QUESTIONS[0]) for _ in range(5)]]
    wanted = hits(after)  # every hit is audited (sample rate 1): all queued after the restart
    assert len(wanted) == 6
    verdicts = await wait_judged(server.url, gw.namespace, wanted, worker, within_s=30)
    assert verdicts == wanted, child_log(worker)[-500:]
