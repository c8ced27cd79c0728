"""Several replicas on one Redis Stack: two ``vetcache serve`` processes and two
``vetcache audit-worker`` processes. An entry admitted through replica A is served by B; a
threshold set through A governs B within 5 s; 500 audit jobs produced by both replicas end
as exactly 500 verdicts, none lost, while one worker is killed midway; an entry invalidated
through A is served by neither at once."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from audit.ledgers.redis import RedisLedger
from proxy.auth import hash_key
from tests.conftest import child_log, free_port, route, stop, vetcache, wait_http

pytestmark = pytest.mark.integration

QUESTION = "How do I reverse a list in Python?"
PARAPHRASE = "How can I reverse a Python list?"  # 0.979 with the bundled model
JOBS = 500
ADMIN = {"authorization": "Bearer sk-admin"}


@pytest.fixture(scope="module")
def cluster(
    redis_url: str, fake_upstream: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Two gateways and two audit workers sharing ``redis_url``."""
    config = tmp_path_factory.mktemp("scale") / "vetcache.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "redis_url": redis_url,
                "auth": {"enabled": False},
                "admin_key_sha256": hash_key("sk-admin"),
                "access_log": False,
                "cache": {"threshold": 0.95, "threshold_refresh_s": 1, "lookup_budget_ms": 5000},
                "audit": {"sample_rate": 1.0, "reclaim_after_s": 2, "worker_batch": 4},
                "model_list": [route("fake-gpt", "fake-gpt", fake_upstream)],
            }
        )
    )
    ports = [free_port(), free_port()]
    gateways = [vetcache("serve", "--config", str(config), "--port", str(p)) for p in ports]
    workers = [
        vetcache("audit-worker", "--config", str(config), "--name", f"w{i}", "--metrics-port", "0")
        for i in range(2)
    ]
    try:
        for port, process in zip(ports, gateways, strict=True):
            wait_http(f"http://127.0.0.1:{port}/readyz", process, timeout=180)
        yield {
            "urls": [f"http://127.0.0.1:{p}" for p in ports],
            "gateways": gateways,
            "workers": workers,
        }
    finally:
        for process in [*gateways, *workers]:
            stop(process)


async def ask(http: httpx.AsyncClient, namespace: str, text: str) -> httpx.Response:
    body = {"model": "fake-gpt", "messages": [{"role": "user", "content": text}]}
    reply = await http.post(
        "/v1/chat/completions", json=body, headers={"x-vetcache-namespace": namespace}
    )
    assert reply.status_code == 200, reply.text
    return reply


async def test_an_entry_and_a_threshold_set_through_one_replica_reach_the_other(
    cluster: dict[str, Any],
) -> None:
    namespace = f"so-{uuid.uuid4().hex[:8]}"
    url_a, url_b = cluster["urls"]
    async with (
        httpx.AsyncClient(base_url=url_a, timeout=30) as a,
        httpx.AsyncClient(base_url=url_b, timeout=30) as b,
    ):
        first = await ask(a, namespace, QUESTION)
        assert first.headers["x-vetcache"] == "miss"
        deadline = time.monotonic() + 10
        while (through_b := await ask(b, namespace, PARAPHRASE)).headers["x-vetcache"] != "hit":
            assert time.monotonic() < deadline, "replica B never saw A's entry"
            await asyncio.sleep(0.1)
        assert float(through_b.headers["x-vetcache-similarity"]) > 0.95
        # B serves A's answer: the upstream's reply to A's question, not to the paraphrase.
        assert QUESTION in through_b.json()["choices"][0]["message"]["content"]

        put = await a.put(
            f"/admin/thresholds/{namespace}", headers=ADMIN, json={"threshold": 0.999}
        )
        assert put.status_code == 200
        applied = time.monotonic()
        while (strict := await ask(b, namespace, PARAPHRASE)).headers["x-vetcache"] != "miss":
            assert time.monotonic() - applied < 5, "replica B did not follow within 5 s"
            await asyncio.sleep(0.1)
        assert strict.headers["x-vetcache-threshold"] == "0.9990"


async def test_an_entry_invalidated_through_one_replica_is_served_by_neither_at_once(
    cluster: dict[str, Any],
) -> None:
    """No replica keeps an entry of its own: the next lookup on B after A deleted the entry
    misses, on the exact layer and the semantic one alike, with no wait."""
    namespace = f"inv-{uuid.uuid4().hex[:8]}"
    url_a, url_b = cluster["urls"]
    async with (
        httpx.AsyncClient(base_url=url_a, timeout=30) as a,
        httpx.AsyncClient(base_url=url_b, timeout=30) as b,
    ):
        assert (await ask(a, namespace, QUESTION)).headers["x-vetcache"] == "miss"
        deadline = time.monotonic() + 10
        while (hit := await ask(b, namespace, PARAPHRASE)).headers["x-vetcache"] != "hit":
            assert time.monotonic() < deadline, "replica B never saw A's entry"
            await asyncio.sleep(0.1)
        assert (await ask(b, namespace, QUESTION)).headers["x-vetcache"] == "hit"  # exact
        entry = hit.headers["x-vetcache-entry"]
        deleted = await a.delete(f"/admin/entries/{entry}", headers=ADMIN)
        assert deleted.status_code == 200 and deleted.json()["deleted"] == 1
        probe = {"model": "fake-gpt", "stream": False}
        for replica in (b, a):
            for text in (QUESTION, PARAPHRASE):
                after = await replica.post(
                    "/v1/chat/completions",
                    json={**probe, "messages": [{"role": "user", "content": text}]},
                    # no-store: a miss here admits nothing a later probe could hit
                    headers={"x-vetcache-namespace": namespace, "cache-control": "no-store"},
                )
                assert after.headers["x-vetcache"] == "miss", (text, after.headers)


async def test_500_jobs_from_two_replicas_become_500_verdicts_when_a_worker_dies(
    cluster: dict[str, Any], redis_url: str
) -> None:
    namespace = f"jobs-{uuid.uuid4().hex[:8]}"
    clients = [httpx.AsyncClient(base_url=u, timeout=60) for u in cluster["urls"]]
    ledger = RedisLedger(redis_url)
    try:
        assert (await ask(clients[0], namespace, QUESTION)).headers["x-vetcache"] == "miss"
        deadline = time.monotonic() + 10
        while (await ask(clients[1], namespace, PARAPHRASE)).headers["x-vetcache"] != "hit":
            assert time.monotonic() < deadline, "the entry was never admitted"
        # That probe hit made one job already; 499 more, alternating replicas.
        gate = asyncio.Semaphore(8)
        served: list[str] = []

        async def hit(i: int) -> None:
            async with gate:
                reply = await ask(clients[i % 2], namespace, QUESTION)
                served.append(reply.headers["x-vetcache"])

        sending = asyncio.gather(*(hit(i) for i in range(JOBS - 1)))

        async def judged() -> int:
            return len(await ledger.query(namespace=namespace, limit=None))

        victim = cluster["workers"][0]
        deadline = time.monotonic() + 60
        while await judged() < 50:
            assert time.monotonic() < deadline, child_log(victim)
            await asyncio.sleep(0.05)
        os.kill(victim.pid, signal.SIGKILL)  # midway: jobs taken, not all finished
        victim.wait(timeout=10)
        assert await judged() < JOBS  # work was left for the survivor
        await sending
        assert served.count("hit") == JOBS - 1
        deadline = time.monotonic() + 120
        while (count := await judged()) < JOBS:
            assert cluster["workers"][1].poll() is None, child_log(cluster["workers"][1])
            assert time.monotonic() < deadline, f"jobs were lost: {count}/{JOBS} judged"
            await asyncio.sleep(0.2)
        await asyncio.sleep(3)  # past the reclaim timeout: nothing is judged twice
        verdicts = await ledger.query(namespace=namespace, limit=None)
        assert len(verdicts) == JOBS
        assert len({v.job.job_id for v in verdicts}) == JOBS
        assert len({v.job.request_id for v in verdicts}) == JOBS
    finally:
        for client in clients:
            await client.aclose()
        await ledger.close()
