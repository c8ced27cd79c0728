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
