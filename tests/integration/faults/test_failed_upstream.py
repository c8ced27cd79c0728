"""Failed upstream answers (500, 429, a timeout, a stream cut midway) under load: the client
gets the mapped error and nothing is ever admitted."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import route
from tests.integration.faults.checks import assert_answered, assert_entries_whole, wait_judged
from tests.integration.faults.rig import Gateway, RedisServer
from tests.integration.faults.traffic import (
    QUESTIONS,
    Reply,
    ask,
    expected,
    hits,
    summary,
    under_load,
    until_hit,
    upstream_calls,
)

pytestmark = pytest.mark.integration

FAILURES = [
    # (alias, stream, status the client gets, error code)
    ("broken", False, 500, "fake_500"),
    ("broken", True, 500, "fake_500"),
    ("rate-limited", False, 429, "fake_429"),
    ("rate-limited", True, 429, "fake_429"),
    ("slow", False, 504, "upstream_timeout"),
    ("slow", True, 504, "upstream_timeout"),
    ("truncated", True, 200, None),  # the status line went out before the cut
]
UPSTREAM_MODELS = {"broken": "error-500", "rate-limited": "error-429", "slow": "sleep-3000",
                   "truncated": "truncate"}  # fmt: skip


async def test_failed_upstream_answers_are_never_admitted(
    own_redis: Callable[..., RedisServer],
    gateway: Callable[..., Gateway],
    audit_worker: Callable[[Path], subprocess.Popen[bytes]],
    fake_upstream: str,
) -> None:
    """500, 429, timeout and a stream cut midway, each asked twice under load: the client
    gets the mapped error both times (the second went upstream again: nothing was cached),
    no entry holds any of these prompts, and the same prompt asked of the healthy alias is
    a miss, then a hit."""
    server = own_redis()
    gw = gateway(
        server.url,
        *(route(alias, model, fake_upstream) for alias, model in UPSTREAM_MODELS.items()
          if alias != "slow"),
        route("slow", "sleep-3000", fake_upstream, timeout=0.5),
    )  # fmt: skip
    worker = audit_worker(gw.config)
    failed: list[Reply] = []
    asked: list[str] = []
    async with under_load(gw) as replies:
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as http:
            for alias, stream, status, code in FAILURES:
                question = f"Fault {alias} stream={stream}: what is {uuid.uuid4().hex[:6]}?"
                asked.append(question)
                model = UPSTREAM_MODELS[alias]
                calls = await upstream_calls(fake_upstream, model)
                for _ in range(2):
                    reply = await ask(http, gw.namespace, question, alias, stream)
                    failed.append(reply)
                    assert reply.status == status, reply
                    assert reply.cache != "hit", reply
                    assert reply.content is None, reply
                    if code is None:
                        assert reply.error_code in ("upstream_unreachable", "upstream_timeout")
                    else:
                        assert reply.error_code == code, reply
                assert await upstream_calls(fake_upstream, model) - calls == 2, alias
            await asyncio.sleep(1)  # admissions run after the answer: give them time
            with server.client() as client:
                texts = {client.hget(k, "text") for k in client.scan_iter(match="vc:e:*")}
            assert not {q.encode() for q in asked} & texts
            healthy = [await ask(http, gw.namespace, q) for q in asked]
        assert {r.cache for r in healthy} == {"miss"}
        assert_answered(healthy)
        again = await until_hit(gw.url, gw.namespace, asked[-1])
        assert again.content == expected(asked[-1])
    print(f"upstream failures: {len(failed)} failing requests "
          f"{dict(Counter((r.model, r.status) for r in failed))}; load {summary(replies)}")  # fmt: skip
    assert_answered(replies)
    assert assert_entries_whole(server) == {*QUESTIONS, *asked}
    served = hits(replies) | {again.request_id}
    assert len(await wait_judged(server.url, gw.namespace, served, worker)) == len(served)
