"""A real 3-primary Redis Cluster (Redis Stack, search module on every shard).

Each shard's search module only indexes the keys that shard holds, so the store keeps one
index per primary and sends each lookup to the primary that owns its scope's slot. These
tests show where keys and searches land, that the ledger's multi-key steps stay in one slot,
and the whole path (gateway, audit queue, worker, verdict, action) on a cluster.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest
import redis.asyncio as aioredis
from fastapi.testclient import TestClient
from redis.asyncio.cluster import RedisCluster

from audit import AuditSettings, AuditWorker, build_queue_and_ledger
from audit.judges.contrast import ContrastJudge
from audit.ledgers.base import Served
from audit.schema import AuditJob, HardNegative, Verdict
from cache.errors import StoreUnusable
from cache.schema import CacheEntry
from cache.stores.redis import RedisStore
from cache.stores.redis_layout import entry_key
from proxy.app import create_app
from proxy.auth import hash_key
from proxy.settings import Settings
from tests.conftest import route

pytestmark = pytest.mark.integration

DIM = 4  # an index of its own: the contract suite's (8) and the gateway's (384) are others


def vector(*values: float) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[: len(values)] = values
    return v / np.linalg.norm(v)


def entry(scope: str) -> CacheEntry:
    return CacheEntry(
        id=uuid.uuid4().hex, scope=scope, exact=uuid.uuid4().hex, namespace="cluster",
        tenant="t", model="m", text=f"prompt of {scope}", response='{"a": 1}', embedder="e",
        created_at=time.time(),
    )  # fmt: skip


@pytest.fixture
async def cluster(redis_cluster_url: str) -> AsyncIterator[RedisCluster]:
    client = RedisCluster.from_url(redis_cluster_url)
    await client.initialize()
    yield client
    await client.aclose()


@pytest.fixture
async def store(redis_cluster_url: str) -> AsyncIterator[RedisStore]:
    opened = RedisStore(redis_cluster_url, cluster=True)
    await opened.open(DIM)
    yield opened
    await opened.close()


async def on_node(cluster: RedisCluster, name: str, *command: Any) -> Any:
    """``command`` sent to the primary ``name`` itself, not routed by key."""
    host, port = name.rsplit(":", 1)
    direct = aioredis.Redis(host=host, port=int(port))
    try:
        return await direct.execute_command(*command)  # type: ignore[no-untyped-call]
    finally:
        await direct.aclose()


async def search_calls(cluster: RedisCluster) -> dict[str, int]:
    calls = {}
    for node in cluster.get_primaries():
        host, port = node.name.rsplit(":", 1)
        direct = aioredis.Redis(host=host, port=int(port))
        stats = await direct.info("commandstats")
        await direct.aclose()
        calls[node.name] = int(stats.get("cmdstat_FT.SEARCH", {}).get("calls", 0))
    return calls


async def test_each_primary_gets_one_index_named_in_its_own_slots(
    cluster: RedisCluster, store: RedisStore
) -> None:
    primaries = cluster.get_primaries()
    assert len(primaries) == 3
    for node in primaries:
        listed = await on_node(cluster, node.name, "FT._LIST")
        ours = [_text(n) for n in listed if _text(n).startswith(store.index_name + ":")]
        assert len(ours) == 1, (node.name, ours)
        owner = cluster.get_node_from_key(ours[0])
        assert owner is not None and owner.name == node.name


async def test_lookups_go_to_the_shard_that_owns_the_scope(
    cluster: RedisCluster, store: RedisStore
) -> None:
    # Scopes until every primary owns five of them (hash slots decide, not us).
    owners: dict[str, str] = {}
    while (
        min((list(owners.values()).count(n.name) for n in cluster.get_primaries()), default=0) < 5
    ):
        scope = uuid.uuid4().hex
        node = cluster.get_node_from_key(entry_key(scope, ""))
        assert node is not None
        owners[scope] = node.name
    admitted = {scope: entry(scope) for scope in owners}
    for scope, item in admitted.items():
        await store.put(item, vector(1, 0.1), ttl_s=300, cap=None)
        # The entry's hash is on the scope's shard.
        assert await on_node(cluster, owners[scope], "EXISTS", entry_key(scope, item.id)) == 1

    before = await search_calls(cluster)
    for scope, item in admitted.items():
        found = await store.search(scope, vector(1, 0), k=1)
        assert [e.id for e, _ in found] == [item.id]
        assert found[0][0] == item
        assert found[0][1] == pytest.approx(float(vector(1, 0.1) @ vector(1, 0)), abs=1e-4)
    after = await search_calls(cluster)
    # Exactly one FT.SEARCH per lookup, on the shard that owns the scope and no other.
    for node in cluster.get_primaries():
        owned = sum(1 for name in owners.values() if name == node.name)
        assert after[node.name] - before[node.name] == owned, node.name


@pytest.mark.parametrize("protocol", [2, 3])
async def test_both_reply_protocols_find_the_entry(redis_cluster_url: str, protocol: int) -> None:
    # The shard search is a raw command whose reply the store parses itself: RESP2 is a
    # flat list, RESP3 (redis-py's default) a map.
    store = RedisStore(f"{redis_cluster_url}?protocol={protocol}", cluster=True)
    await store.open(DIM)
    try:
        scope = uuid.uuid4().hex
        near, far = entry(scope), entry(scope)
        await store.put(near, vector(1, 1, 0.1), ttl_s=300, cap=None)
        await store.put(far, vector(0, 1, 1), ttl_s=300, cap=None)
        found = await store.search(scope, vector(1, 1), k=2)
        assert [e.id for e, _ in found] == [near.id, far.id]
        assert found[0][1] == pytest.approx(float(vector(1, 1, 0.1) @ vector(1, 1)), abs=1e-4)
    finally:
        await store.close()


async def test_a_shard_that_lost_its_index_gets_it_back(
    cluster: RedisCluster, store: RedisStore
) -> None:
    scope = uuid.uuid4().hex
    item = entry(scope)
    await store.put(item, vector(0, 1), ttl_s=300, cap=None)
    owner = cluster.get_node_from_key(entry_key(scope, ""))
    assert owner is not None
    listed = await on_node(cluster, owner.name, "FT._LIST")
    [index] = [_text(n) for n in listed if _text(n).startswith(store.index_name + ":")]
    await on_node(cluster, owner.name, "FT.DROPINDEX", index)  # keeps the documents
    assert await store.search(scope, vector(0, 1), k=1) == []  # this lookup rebuilds it
    deadline = time.monotonic() + 10
    while not (found := await store.search(scope, vector(0, 1), k=1)):
        assert time.monotonic() < deadline, "the rebuilt index never found the entry"
        await asyncio.sleep(0.1)
    assert found[0][0].id == item.id  # the rebuilt index picked up the existing hash


async def test_the_cluster_setting_must_match_the_server(
    redis_cluster_url: str, redis_url: str
) -> None:
    plain_on_cluster = RedisStore(redis_cluster_url)
    with pytest.raises(StoreUnusable, match=r"is a cluster node; set redis_cluster: true"):
        await plain_on_cluster.open(DIM)
    await plain_on_cluster.close()
    cluster_on_plain = RedisStore(redis_url, cluster=True)
    with pytest.raises(StoreUnusable, match=r"is not a cluster node; set redis_cluster: false"):
        await cluster_on_plain.open(DIM)
    await cluster_on_plain.close()


def job(namespace: str) -> AuditJob:
    return AuditJob(
        job_id=uuid.uuid4().hex, request_id=uuid.uuid4().hex, entry_id=uuid.uuid4().hex,
        new_prompt="n", cached_prompt="c", cached_answer="a", similarity=0.93, threshold=0.9,
        namespace=namespace, model="m",
    )  # fmt: skip


async def test_ledger_and_queue_keep_their_multi_key_steps_in_one_slot(
    redis_cluster_url: str,
) -> None:
    namespace = uuid.uuid4().hex[:12]
    queue, ledger = build_queue_and_ledger(AuditSettings(), redis_cluster_url, redis_cluster=True)
    await queue.open()
    try:
        jobs = [job(namespace) for _ in range(3)]
        for item in jobs:
            await queue.put(item)
        taken: list[Any] = []
        while len(taken) < 3:
            taken += await queue.take("c1", count=3, block_s=0.2)
        assert {d.job.job_id for d in taken} >= {j.job_id for j in jobs}

        # The record script touches three keys; on a cluster they must share a slot.
        first = Verdict(id=uuid.uuid4().hex, job=jobs[0], verdict="false_positive",
                        judge="contrast/2", created_at=time.time())  # fmt: skip
        assert await ledger.record(first)
        again = first.model_copy(update={"id": uuid.uuid4().hex})
        assert not await ledger.record(again)  # one judge verdict per job, across shards
        assert [v.id for v in await ledger.query(namespace=namespace)] == [first.id]
        assert await ledger.get(first.id) == first

        pair = HardNegative(
            cached_prompt="c", new_prompt=uuid.uuid4().hex, similarity=0.93,
            namespace=namespace, model="m", embedder="e", source="judge", verdict_id=first.id,
            created_at=time.time(),
        )  # fmt: skip
        await ledger.add_hard_negative(pair)
        assert [p.pair_id for p in await ledger.hard_negatives(namespace=namespace)] == [
            pair.pair_id
        ]
        await ledger.drop_hard_negative(pair.pair_id)
        assert await ledger.hard_negatives(namespace=namespace) == []

        served = Served(job=jobs[1], key_id="k1")
        assert await ledger.remember(served, ttl_s=60) == 1
        assert await ledger.served(served.ref) == served
        assert await ledger.lookup_bins(namespace, hours=1) == {93: 1}
        assert await ledger.lead(namespace, "me", ttl_s=5)
        assert not await ledger.lead(namespace, "someone else", ttl_s=5)
        for delivery in taken:
            await queue.ack(delivery.id)
    finally:
        await queue.close()
        await ledger.close()


async def test_gateway_and_audit_worker_on_a_cluster(
    make_settings: Callable[..., Settings], fake_upstream: str, redis_cluster_url: str
) -> None:
    """From settings alone: the gateway's cache and audit queue on the cluster; a false hit
    is judged by a worker on the cluster, recorded, and not served again."""
    settings = make_settings(
        redis_url=redis_cluster_url,
        redis_cluster=True,
        cache={"enabled": True, "threshold": 0.5, "lookup_budget_ms": 2000},
        audit={"burn_in": 5, "sample_rate": 0.0},
        admin_key_sha256=hash_key("sk-admin"),
        model_list=[route("fake-gpt", "fake-gpt", fake_upstream)],
    )
    with TestClient(create_app(settings)) as client:
        await _false_hit_judged_on_a_cluster(client, redis_cluster_url)


async def _false_hit_judged_on_a_cluster(client: TestClient, redis_cluster_url: str) -> None:
    namespace = uuid.uuid4().hex[:12]
    headers = {"x-vetcache-namespace": namespace}

    def ask(text: str) -> Any:
        body = {"model": "fake-gpt", "messages": [{"role": "user", "content": text}]}
        return client.post("/v1/chat/completions", headers=headers, json=body)

    assert ask("Cancel my subscription").headers["x-vetcache"] == "miss"
    deadline = time.monotonic() + 10
    while ask("Cancel my subscription, please").headers["x-vetcache"] != "hit":
        assert time.monotonic() < deadline, "the first answer was never admitted"
        await asyncio.sleep(0.05)
    false_hit = ask("Don't cancel my subscription")
    assert false_hit.headers["x-vetcache"] == "hit"

    audit = AuditSettings()
    queue, ledger = build_queue_and_ledger(audit, redis_cluster_url, redis_cluster=True)
    store = RedisStore(redis_cluster_url, cluster=True)
    await queue.open()
    worker = AuditWorker("cluster-worker", queue, ContrastJudge(), ledger, store, audit)
    try:
        deadline = time.monotonic() + 10
        while len(await ledger.query(namespace=namespace, limit=None)) < 2:
            assert time.monotonic() < deadline, "the hits were never judged"
            await worker.run_once(block_s=0.2)
        verdicts = {v.job.new_prompt: v.verdict for v in await ledger.query(namespace=namespace)}
        assert verdicts == {
            "Don't cancel my subscription": "false_positive",
            "Cancel my subscription, please": "correct",
        }
    finally:
        await queue.close()
        await ledger.close()
        await store.close()
    assert ask("Don't cancel my subscription").headers["x-vetcache"] == "miss"
    # The entry's bar went up past the false hit's similarity, but it still serves its own
    # prompt. (Not the paraphrase: its similarity, 0.93-0.95 by backend, is under the new
    # bar, and whether it had its own entry depended on when the first admission landed.)
    assert ask("Cancel my subscription").headers["x-vetcache"] == "hit"
    admin = {"authorization": "Bearer sk-admin"}
    rate = client.get(f"/admin/fp-rate?namespace={namespace}", headers=admin).json()
    assert rate["namespaces"][namespace]["false_positives"] == 1
    assert rate["namespaces"][namespace]["labelled"] == 2


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
