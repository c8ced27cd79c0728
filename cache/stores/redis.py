"""Redis with the Query Engine (RediSearch): HNSW cosine index, TAG filter on scope.

Layout (``{...}`` are hash tags, so one scope's keys share a cluster slot):

    vc:e:{<scope>}:<id>       hash: the entry's fields and its float32 vector ``vec``
    vc:x:{<scope>}:<exact>    string: id of the entry admitted under that exact key
    vc:n:<namespace>          sorted set: entry keys scored by expiry time (count and cap)
    vc:thresholds             hash: live threshold per namespace, read by every replica
    vc:namespaces             set: every namespace that has had an entry (metrics)

Entries and exact pointers expire with the entry's TTL; the index forgets expired hashes.
Over the cap, the entries closest to expiry are evicted (with one TTL: the oldest).
"""

from __future__ import annotations

import time
from typing import Any, cast

import numpy as np
import redis.asyncio as aioredis
from redis.commands.search.field import TagField, VectorField
from redis.commands.search.index_definition import IndexDefinition, IndexType
from redis.commands.search.query import Query
from redis.exceptions import RedisError, ResponseError

from cache.embedder import Vector
from cache.schema import CacheEntry
from cache.stores.base import Store, StoreError, StoreUnusable

SCHEMA_VERSION = 2  # 2: created_at no longer indexed (its returned value was rounded)
ENTRY_PREFIX = "vc:e:"
THRESHOLDS_KEY = "vc:thresholds"
# HNSW graph parameters. RediSearch's default EF_RUNTIME (10) missed true nearest neighbours
# among 100k entries of one scope in tests/bench/hit_path.py; 64 finds them at ~1 ms.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_RUNTIME = 64
TEXT_FIELDS = (
    "id",
    "scope",
    "exact",
    "namespace",
    "tenant",
    "model",
    "text",
    "response",
    "embedder",
)
FIELDS = (*TEXT_FIELDS, "created_at", "min_similarity", "quarantined")


def _is_missing_query_engine(error: ResponseError) -> bool:
    # Redis answers FT.* commands it does not know with "unknown command 'FT.INFO'";
    # that string is the only signal that the search module is absent.
    return "unknown command" in str(error).lower()


def _is_missing_index(error: ResponseError) -> bool:
    # RediSearch 2.x says "Unknown index name" (or "no such index" in older builds).
    message = str(error).lower()
    return "unknown index name" in message or "no such index" in message


def entry_key(scope: str, entry_id: str) -> str:
    return f"{ENTRY_PREFIX}{{{scope}}}:{entry_id}"


def exact_key(scope: str, exact: str) -> str:
    return f"vc:x:{{{scope}}}:{exact}"


NAMESPACES_KEY = "vc:namespaces"


def namespace_key(namespace: str) -> str:
    return f"vc:n:{namespace}"


class RedisStore(Store):
    """Entries in Redis hashes, searched with an HNSW index."""

    def __init__(self, url: str, *, timeout_s: float = 1.0, max_connections: int = 64) -> None:
        self.url = url
        # A bounded pool that makes callers wait for a free connection (up to timeout_s)
        # instead of failing with "Too many connections" under a burst.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_s,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )
        self._redis = aioredis.Redis(connection_pool=pool)
        self.index_name = ""
        self.dimension = 0

    async def open(self, dimension: int) -> None:
        self.dimension = dimension
        self.index_name = f"vetcache:v{SCHEMA_VERSION}:d{dimension}"
        index = self._redis.ft(self.index_name)
        try:
            await index.info()  # type: ignore[no-untyped-call]
            return
        except ResponseError as exc:
            if _is_missing_query_engine(exc):
                raise StoreUnusable(
                    f"Redis at {self._safe_url()} has no Query Engine (RediSearch). Run Redis "
                    "Stack >= 7.2 or Redis 8 (locally: scripts/redis-stack.sh start)"
                ) from None
            if not _is_missing_index(exc):
                raise StoreError(f"cannot inspect the index: {exc}") from exc
        except RedisError as exc:
            raise StoreError(f"cannot reach Redis at {self._safe_url()}: {exc}") from exc
        schema = [
            TagField("scope"),
            TagField("namespace"),
            VectorField(
                "vec",
                "HNSW",
                {
                    "TYPE": "FLOAT32",
                    "DIM": dimension,
                    "DISTANCE_METRIC": "COSINE",
                    "M": HNSW_M,
                    "EF_CONSTRUCTION": HNSW_EF_CONSTRUCTION,
                },
            ),
        ]
        definition = IndexDefinition(prefix=[ENTRY_PREFIX], index_type=IndexType.HASH)  # type: ignore[no-untyped-call]
        try:
            await index.create_index(schema, definition=definition)
        except ResponseError as exc:
            if "already exists" not in str(exc).lower():  # another replica won the race
                raise StoreError(f"cannot create the index: {exc}") from exc

    def _safe_url(self) -> str:
        """The URL without its password."""
        head, _, tail = self.url.rpartition("@")
        return f"redis://***@{tail}" if head else self.url

    async def close(self) -> None:
        await self._redis.aclose(close_connection_pool=True)

    async def get_exact(self, scope: str, exact: str) -> CacheEntry | None:
        try:
            entry_id = await self._redis.get(exact_key(scope, exact))
            if entry_id is None:
                return None
            fields = await self._redis.hmget(entry_key(scope, _text(entry_id)), list(FIELDS))
        except RedisError as exc:
            raise StoreError(str(exc)) from exc
        if fields[0] is None:
            return None
        return _entry(dict(zip(FIELDS, fields, strict=True)))

    async def search(
        self, scope: str, vector: Vector, k: int = 1
    ) -> list[tuple[CacheEntry, float]]:
        query = (
            Query(
                f"(@scope:{{{scope}}})=>[KNN {k} @vec $q EF_RUNTIME {HNSW_EF_RUNTIME} AS distance]"
            )
            .sort_by("distance")
            .return_fields(*FIELDS, "distance")
            .paging(0, k)
            .dialect(2)
        )
        try:
            result = await self._redis.ft(self.index_name).search(
                query, query_params={"q": vector.astype(np.float32).tobytes()}
            )
        except ResponseError as exc:
            if not _is_missing_index(exc):
                raise StoreError(str(exc)) from exc
            # A Redis restarted without persistence (or flushed) lost the index: build it
            # again; entries admitted from now on are found again.
            await self.open(self.dimension)
            return []
        except RedisError as exc:
            raise StoreError(str(exc)) from exc
        found = []
        for doc in result.docs:
            values = {name: getattr(doc, name, None) for name in FIELDS}
            # redis-py puts the document's key in ``doc.id``, shadowing the entry's own
            # ``id`` field; the entry id is the key's last part.
            values["id"] = str(doc.id).rsplit(":", 1)[-1]
            distance = getattr(doc, "distance", None)
            try:
                entry = _entry(values)
            except (ValueError, KeyError):  # pydantic's ValidationError is a ValueError
                # The hash expired while the query ran: the index still named it, but its
                # fields were gone by the time they were read. It is not there any more.
                continue
            if distance is not None:
                found.append((entry, 1.0 - float(distance)))
        return found

    async def put(
        self, entry: CacheEntry, vector: Vector, ttl_s: int | None, cap: int | None
    ) -> None:
        key = entry_key(entry.scope, entry.id)
        mapping: dict[Any, Any] = {
            **{name: getattr(entry, name) for name in TEXT_FIELDS},
            "created_at": entry.created_at,
            "vec": vector.astype(np.float32).tobytes(),
        }
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hset(key, mapping=mapping)
                pipe.set(exact_key(entry.scope, entry.exact), entry.id)
                if ttl_s:
                    pipe.expire(key, ttl_s)
                    pipe.expire(exact_key(entry.scope, entry.exact), ttl_s)
                expires = entry.created_at + ttl_s if ttl_s else float("inf")
                pipe.zadd(namespace_key(entry.namespace), {key: expires})
                pipe.sadd(NAMESPACES_KEY, entry.namespace)
                pipe.zremrangebyscore(namespace_key(entry.namespace), "-inf", time.time())
                pipe.zcard(namespace_key(entry.namespace))
                results = await pipe.execute()
            size = int(results[-1])
            if cap is not None and size > cap:
                await self._evict(entry.namespace, size - cap)
        except RedisError as exc:
            raise StoreError(str(exc)) from exc

    async def _evict(self, namespace: str, count: int) -> None:
        oldest = cast(
            list[tuple[bytes, float]], await self._redis.zpopmin(namespace_key(namespace), count)
        )
        keys = [_text(member) for member, _ in oldest]
        if not keys:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, ["scope", "exact"])
            pointers = await pipe.execute()
            for key, pointer in zip(keys, pointers, strict=True):
                scope, exact = pointer
                pipe.delete(key)
                if scope is not None and exact is not None:
                    pipe.delete(exact_key(_text(scope), _text(exact)))
            await pipe.execute()

    async def count(self, namespace: str) -> int:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zremrangebyscore(namespace_key(namespace), "-inf", time.time())
                pipe.zcard(namespace_key(namespace))
                results = await pipe.execute()
            return int(results[-1])
        except RedisError as exc:
            raise StoreError(str(exc)) from exc

    async def sizes(self, limit: int = 1000) -> dict[str, int]:
        try:
            # A set kept at admission, not a SCAN: a SCAN walks the whole keyspace (every
            # entry) on each metrics refresh.
            names = sorted(_text(n) for n in await self._redis.smembers(NAMESPACES_KEY))[:limit]
            now = time.time()
            async with self._redis.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.zcount(namespace_key(name), now, "+inf")
                counts = await pipe.execute()
        except RedisError as exc:
            raise StoreError(str(exc)) from exc
        return {name: int(n) for name, n in zip(names, counts, strict=True)}

    async def guard(
        self,
        scope: str,
        entry_id: str,
        *,
        min_similarity: float | None = None,
        quarantine: bool = False,
    ) -> bool:
        key = entry_key(scope, entry_id)
        try:
            current = await self._redis.hmget(key, ["id", "min_similarity"])
            if current[0] is None:
                return False
            mapping: dict[Any, Any] = {}
            if min_similarity is not None:
                old = float(_text(current[1])) if current[1] else -1.0
                mapping["min_similarity"] = repr(max(old, min_similarity))
            if quarantine:
                mapping["quarantined"] = "1"
            if mapping:
                await self._redis.hset(key, mapping=mapping)
        except RedisError as exc:
            raise StoreError(str(exc)) from exc
        return True

    async def thresholds(self) -> dict[str, float]:
        try:
            raw = await self._redis.hgetall(THRESHOLDS_KEY)
        except RedisError as exc:
            raise StoreError(str(exc)) from exc
        return {_text(name): float(_text(value)) for name, value in raw.items()}

    async def set_threshold(self, namespace: str, value: float | None) -> None:
        try:
            if value is None:
                await self._redis.hdel(THRESHOLDS_KEY, namespace)
            else:
                await self._redis.hset(THRESHOLDS_KEY, namespace, repr(value))
        except RedisError as exc:
            raise StoreError(str(exc)) from exc

    async def ping(self) -> None:
        """Raise ``StoreError`` unless Redis answers."""
        try:
            await self._redis.ping()
        except RedisError as exc:
            raise StoreError(str(exc)) from exc


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry(values: dict[str, Any]) -> CacheEntry:
    floor = values.get("min_similarity")
    return CacheEntry(
        **{name: _text(values[name]) for name in TEXT_FIELDS},
        created_at=float(_text(values["created_at"])),
        min_similarity=float(_text(floor)) if floor else None,
        quarantined=_text(values.get("quarantined") or "") == "1",
    )
