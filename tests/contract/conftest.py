"""The store every contract test runs on: in-process, Redis with the Query Engine (RESP3
and RESP2), and a 3-primary Redis Cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cache.stores.base import Store
from cache.stores.memory import MemoryStore
from cache.stores.redis import RedisStore

DIM = 8


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.integration),
        pytest.param("redis-resp2", marks=pytest.mark.integration),
        pytest.param("cluster", marks=pytest.mark.integration),
    ]
)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "cluster":  # a 3-primary Redis Cluster: one index per shard
        redis_store = RedisStore(request.getfixturevalue("redis_cluster_url"), cluster=True)
    elif request.param == "redis-resp2":  # searches parse raw replies: RESP2 is a flat list
        url = request.getfixturevalue("redis_url")
        redis_store = RedisStore(f"{url}{'&' if '?' in url else '?'}protocol=2")
    else:
        redis_store = RedisStore(request.getfixturevalue("redis_url"))
    await redis_store.open(DIM)
    try:
        yield redis_store
    finally:
        await redis_store.close()
