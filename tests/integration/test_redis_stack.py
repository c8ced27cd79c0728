"""The Redis the suite runs against has what the cache needs: the Query Engine with HNSW
vector search filtered by TAG (what ``scripts/redis-stack.sh`` provides to CI and users)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import numpy as np
import pytest
import redis.asyncio as redis
from redis.commands.search.field import TagField, VectorField
from redis.commands.search.index_definition import IndexDefinition, IndexType
from redis.commands.search.query import Query

from cache import Outcome
from cache.embedder import HashEmbedder
from cache.semantic import SemanticCache
from cache.settings import CacheSettings
from cache.stores.redis import RedisStore

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    try:
        yield connection
    finally:
        await connection.aclose()


def unit(*values: float) -> bytes:
    vector = np.array(values, dtype=np.float32)
    return (vector / np.linalg.norm(vector)).tobytes()


async def test_hnsw_knn_with_tag_filter(client: redis.Redis) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    index = client.ft(f"{prefix}idx")
    await index.create_index(
        [
            TagField("scope"),
            VectorField("vec", "HNSW", {"TYPE": "FLOAT32", "DIM": 3, "DISTANCE_METRIC": "COSINE"}),
        ],
        definition=IndexDefinition(prefix=[prefix], index_type=IndexType.HASH),  # type: ignore[no-untyped-call]
    )
    try:
        await client.hset(f"{prefix}1", mapping={"scope": "a", "vec": unit(1, 0, 0)})
        await client.hset(f"{prefix}2", mapping={"scope": "a", "vec": unit(0, 1, 0)})
        await client.hset(f"{prefix}3", mapping={"scope": "b", "vec": unit(1, 0.01, 0)})
        query = (
            Query("(@scope:{a})=>[KNN 1 @vec $q AS distance]").return_fields("distance").dialect(2)
        )
        result = await index.search(query, query_params={"q": unit(1, 0.02, 0)})
        assert [doc.id for doc in result.docs] == [f"{prefix}1"]  # b's closer vector is fenced off
        assert float(result.docs[0].distance) < 0.01
    finally:
        await index.dropindex(delete_documents=True)


ANSWER = {"choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}


def body(text: str) -> dict[str, object]:
    return {"model": "m", "messages": [{"role": "user", "content": text}]}


@pytest.mark.parametrize("guard", [{"quarantine": True}, {"min_similarity": 1.0}])
async def test_the_search_serves_the_second_best_entry_when_the_nearest_is_refused(
    redis_url: str, guard: dict[str, object]
) -> None:
    """``cache.search_k`` on the real index: a quarantined or raised nearest entry no longer
    hides the second-best one, which is served."""
    store = RedisStore(redis_url)
    cache = SemanticCache(CacheSettings(threshold=-1.0), store, HashEmbedder())
    await cache.open()
    tenant = uuid.uuid4().hex  # a scope of its own
    try:
        for text in ("Cancel my order", "Please cancel the order I placed"):
            await cache.admit(cache.key(body(text), tenant, "ns"), None, ANSWER)
        key = cache.key(body("Cancel my order now"), tenant, "ns")
        first = await cache.lookup(key, -1.0)
        assert first.hit is not None and first.hit.entry.text == "Cancel my order"
        await store.guard(key.scope, first.hit.entry.id, **guard)  # type: ignore[arg-type]
        second = await cache.lookup(key, -1.0)
        assert second.outcome == Outcome.HIT and second.refused is None
        assert (
            second.hit is not None and second.hit.entry.text == "Please cancel the order I placed"
        )
        assert [p.candidate.entry.id for p in second.passed_over] == [first.hit.entry.id]
    finally:
        await cache.close()
