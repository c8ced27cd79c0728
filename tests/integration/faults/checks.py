"""What a fault must not break, checked after it: every reply the upstream's answer, every
entry in Redis whole, every hit served judged."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import Counter

import orjson

from audit.ledgers.redis import RedisLedger
from tests.conftest import child_log
from tests.integration.faults.rig import RedisServer
from tests.integration.faults.traffic import Reply, expected

ENTRY_FIELDS = {b"id", b"scope", b"exact", b"namespace", b"tenant", b"model", b"text",
                b"response", b"embedder", b"created_at", b"vec"}  # fmt: skip
VECTOR_BYTES = 384 * 4  # the bundled model's float32 vector


def assert_answered(replies: list[Reply]) -> None:
    """Every reply is a 200 with the upstream's answer to its own question."""
    statuses = Counter(r.status for r in replies)
    assert statuses == {200: len(replies)}, statuses
    wrong = [r for r in replies if r.content != expected(r.question)]
    assert not wrong, wrong[:3]


def assert_entries_whole(server: RedisServer, routes: dict[str, str] | None = None) -> set[str]:
    """Every entry in Redis is complete: all its fields, a whole vector, and the upstream's
    full answer to its own prompt (``routes``: upstream model of each alias besides
    ``fake-gpt``). No entry is left pending. The prompts stored (a prompt two clients missed
    at once can be admitted twice: counting entries would be flaky)."""
    upstream = {"fake-gpt": "fake-gpt", **(routes or {})}
    with server.client() as client:
        keys = list(client.scan_iter(match="vc:e:*", count=1000))
        assert not list(client.scan_iter(match="vc:p:*", count=1000))
        prompts = set()
        for key in keys:
            entry = client.hgetall(key)
            assert set(entry) >= ENTRY_FIELDS, (key, sorted(entry))
            assert len(entry[b"vec"]) == VECTOR_BYTES, key
            completion = orjson.loads(entry[b"response"])
            choice = completion["choices"][0]
            assert choice["finish_reason"] == "stop", key
            text = entry[b"text"].decode()
            model = upstream[entry[b"model"].decode()]
            assert choice["message"]["content"] == expected(text, model), key
            prompts.add(text)
    return prompts


async def judged(redis_url: str, namespace: str) -> set[str]:
    """Request ids of the hits that have a verdict."""
    ledger = RedisLedger(redis_url)
    try:
        return {v.job.request_id for v in await ledger.query(namespace=namespace, limit=None)}
    finally:
        await ledger.close()


async def wait_judged(
    redis_url: str, namespace: str, wanted: set[str], worker: subprocess.Popen[bytes],
    within_s: float = 60,
) -> set[str]:  # fmt: skip
    """Wait until every request id in ``wanted`` has a verdict (or the time is up); the
    ones that have one."""
    deadline = time.monotonic() + within_s
    while not wanted <= (done := await judged(redis_url, namespace)):
        assert worker.poll() is None, child_log(worker)
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    return done & wanted
