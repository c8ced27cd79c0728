"""Redis with the Query Engine (RediSearch): HNSW cosine index, TAG filter on scope.

Layout (``{...}`` are hash tags, so one scope's keys share a cluster slot):

    vc:e:{<scope>}:<id>       hash: the entry's fields and its float32 vector ``vec``
    vc:p:{<scope>}:<id>       hash: the same for a pending entry (admission policy), outside
                              the index's prefix so no search finds it; released by RENAME
    vc:a:{<scope>}:<id>       set: distinct askers of a pending entry (``confirm: N``)
    vc:l:{<scope>}:<id>       hash: the entry's labels (``cache.stores.redis_labels``)
    vc:x:{<scope>}:<exact>    string: id of the entry admitted under that exact key
    vc:n:<namespace>:<tenant> sorted set: one tenant's entry keys in a namespace, scored by
                              expiry time (count and cap: the cap is per tenant and namespace)
    vc:thresholds             hash: live threshold per namespace, read by every replica
    vc:namespaces             set: every <namespace>:<tenant> that has had an entry (sizes)
    vc:versions, vc:m:..., vc:mig:..., vc:r:...   embedding versions, copies, migrations,
                              shadow counts (``cache.stores.redis_versions``)

Entries and exact pointers expire with the entry's TTL; the index forgets expired hashes.
Over the cap, the entries closest to expiry are evicted (with one TTL: the oldest, or under
``sliding_ttl`` the least recently served: ``cache.stores.redis_expiry``).

On a Redis Cluster (``cluster=True``) each shard's search module indexes only the keys that
shard holds, and routes ``FT.*`` commands by the index name's slot. So there is one index
per primary, named ``vetcache:v<V>:d<dim>:{<tag>}`` with a tag that hashes into a slot that
primary owns; a lookup goes to the index of the primary that owns its scope's slot, which
holds every entry of that scope. A shard's search only loads fields of keys in the index
name's own slot, so on a cluster the search returns ids and distances and the entries are
read with HMGET from the same shard (two round trips instead of one).
"""

from __future__ import annotations

import time
from typing import Any, cast

import numpy as np
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import ResponseError

from cache.embedder import Vector
from cache.errors import StoreError, StoreUnusable
from cache.redis_client import (
    RedisClient,
    as_text,
    close,
    connect,
    redis_errors,
    safe_url,
    topology_mismatch,
)
from cache.redis_replies import is_index_exists, is_missing_index, is_missing_query_engine
from cache.schema import CacheEntry
from cache.stores.base import Store
from cache.stores.redis_expiry import RedisExpiry
from cache.stores.redis_invalidation import RedisInvalidation
from cache.stores.redis_labels import RedisLabels, labels_key
from cache.stores.redis_layout import (
    DISCARD,
    ENTRY_PREFIX,
    EXACT,
    FIELDS,
    HNSW_EF_CONSTRUCTION,
    HNSW_EF_RUNTIME,
    HNSW_M,
    NAMESPACES_KEY,
    RELEASE,
    SCHEMA_VERSION,
    THRESHOLDS_KEY,
    Doc,
    askers_key,
    entry_from,
    entry_key,
    entry_mapping,
    exact_key,
    namespace_key,
    namespace_member,
    namespace_pair,
    pending_key,
)
from cache.stores.redis_shards import search_reply, shard_tags
from cache.stores.redis_versions import RedisVersions


class RedisStore(RedisInvalidation, RedisLabels, RedisVersions, RedisExpiry, Store):
    """Entries in Redis hashes, searched with an HNSW index."""

    def __init__(
        self,
        url: str,
        *,
        cluster: bool = False,
        timeout_s: float = 1.0,
        max_connections: int = 64,
    ) -> None:
        self.url = url
        self.cluster = cluster
        self._redis: RedisClient = connect(
            url, cluster=cluster, timeout_s=timeout_s, max_connections=max_connections
        )
        self.index_name = ""
        self.dimension = 0
        self._shard_indexes: dict[str, str] = {}  # cluster: primary "host:port" -> its index
        self._release = self._redis.register_script(RELEASE)
        self._discard = self._redis.register_script(DISCARD)
        self._exact = self._redis.register_script(EXACT)

    async def open(self, dimension: int) -> None:
        self.dimension = dimension
        self.index_name = f"vetcache:v{SCHEMA_VERSION}:d{dimension}"
        with redis_errors(StoreError, f"cannot reach Redis at {safe_url(self.url)}"):
            mismatch = await topology_mismatch(self._redis, self.url)
        if mismatch:
            raise StoreUnusable(mismatch)
        if not isinstance(self._redis, RedisCluster):
            await self._ensure_index(self.index_name)
            return
        nodes = {node.name: node for node in self._redis.get_primaries()}
        shard_indexes = {
            name: f"{self.index_name}:{{{tag}}}" for name, tag in shard_tags(self._redis).items()
        }
        for name, index_name in shard_indexes.items():
            await self._ensure_index(index_name, nodes[name])
        self._shard_indexes = shard_indexes

    async def _ensure_index(self, name: str, node: ClusterNode | None = None) -> None:
        """Create index ``name`` unless it exists (on ``node``, on a cluster).

        Raw FT.* commands, because only ``execute_command`` lets a cluster client name the
        node: redis-py would send them to a random node and follow its MOVED answers."""
        on_node: dict[str, Any] = {"target_nodes": node} if node is not None else {}
        with redis_errors(StoreError, f"cannot reach Redis at {safe_url(self.url)}"):
            try:
                await self._redis.execute_command("FT.INFO", name, **on_node)
                return
            except ResponseError as exc:
                if is_missing_query_engine(exc):
                    raise StoreUnusable(
                        f"Redis at {safe_url(self.url)} has no Query Engine (RediSearch). Run "
                        "Redis Stack >= 7.2 or Redis 8 (locally: scripts/redis-stack.sh start)"
                    ) from None
                if not is_missing_index(exc):
                    raise StoreError(f"cannot inspect the index: {exc}") from exc
        with redis_errors(StoreError, "cannot create the index"):
            try:
                await self._redis.execute_command(
                    "FT.CREATE", name, "ON", "HASH", "PREFIX", 1, ENTRY_PREFIX,
                    "SCHEMA", "scope", "TAG", "namespace", "TAG",
                    "vec", "VECTOR", "HNSW", 10, "TYPE", "FLOAT32", "DIM", self.dimension,
                    "DISTANCE_METRIC", "COSINE", "M", HNSW_M,
                    "EF_CONSTRUCTION", HNSW_EF_CONSTRUCTION,
                    **on_node,
                )  # fmt: skip
            except ResponseError as exc:
                if not is_index_exists(exc):  # else another replica won the race
                    raise

    async def close(self) -> None:
        await close(self._redis)

    async def get_exact(self, scope: str, exact: str) -> CacheEntry | None:
        prefixes = [entry_key(scope, ""), pending_key(scope, "")]
        with redis_errors():
            found = await self._exact(keys=[exact_key(scope, exact)], args=[*prefixes, *FIELDS])
        if not found:
            return None
        pending, fields = found
        return entry_from(dict(zip(FIELDS, fields, strict=True)), pending=bool(pending))

    async def search(
        self, scope: str, vector: Vector, k: int = 1
    ) -> list[tuple[CacheEntry, float]]:
        query = f"(@scope:{{{scope}}})=>[KNN {k} @vec $q EF_RUNTIME {HNSW_EF_RUNTIME} AS distance]"
        blob = vector.astype(np.float32).tobytes()
        with redis_errors():
            try:
                if isinstance(self._redis, RedisCluster):
                    docs = await self._search_shard(self._redis, scope, query, blob, k)
                else:
                    docs = await self._search_one(query, blob, k)
            except ResponseError as exc:
                if not is_missing_index(exc):
                    raise
                # A Redis restarted without persistence (or flushed) lost the index, or a
                # resharded cluster has a primary without one: build it again; entries
                # admitted from now on are found again.
                await self.open(self.dimension)
                return []
        found = []
        for key, distance, values in docs:
            # The document's key ends in the entry id (redis-py also puts the key in
            # ``doc.id``, shadowing the entry's own ``id`` field).
            values["id"] = key.rsplit(":", 1)[-1]
            try:
                entry = entry_from(values)
            except (ValueError, KeyError):  # pydantic's ValidationError is a ValueError
                # The hash expired while the query ran: the index still named it, but its
                # fields were gone by the time they were read. It is not there any more.
                continue
            if distance is not None:
                found.append((entry, 1.0 - float(distance)))
        return found

    async def _search_one(self, query: str, blob: bytes, k: int) -> list[Doc]:
        """KNN on the single server's index: one round trip returns the entries' fields."""
        raw = await self._redis.execute_command(
            "FT.SEARCH", self.index_name, query, "PARAMS", 2, "q", blob,
            "SORTBY", "distance", "RETURN", len(FIELDS) + 1, *FIELDS, "distance",
            "LIMIT", 0, k, "DIALECT", 2,
        )  # fmt: skip
        return [
            (key, fields.get("distance"), {name: fields.get(name) for name in FIELDS})
            for key, fields in search_reply(raw)
        ]

    async def _search_shard(
        self, client: RedisCluster, scope: str, query: str, blob: bytes, k: int
    ) -> list[Doc]:
        """KNN on the index of the primary that owns ``scope``, then HMGET of the hits.

        The node is named explicitly: redis-py sends FT.SEARCH to a random node (it assumes a
        search coordinator), which answers MOVED; following those cost up to ~50 ms at p99
        here. The shard's search returns ids and distances only (see the top)."""
        node = client.get_node_from_key(entry_key(scope, ""))
        index_name = self._shard_indexes.get(node.name) if node is not None else None
        if node is None or index_name is None:  # a primary this replica has not seen yet
            raise ResponseError("Unknown index name (no index for the scope's primary)")
        raw = await client.execute_command(
            "FT.SEARCH", index_name, query, "PARAMS", 2, "q", blob,
            "SORTBY", "distance", "RETURN", 1, "distance", "LIMIT", 0, k, "DIALECT", 2,
            target_nodes=node,
        )  # fmt: skip
        hits = search_reply(raw)
        async with client.pipeline(transaction=False) as pipe:
            for key, _ in hits:
                pipe.hmget(key, list(FIELDS))
            rows = await pipe.execute()
        return [
            (key, fields.get("distance"), dict(zip(FIELDS, row, strict=True)))
            for (key, fields), row in zip(hits, rows, strict=True)
        ]

    async def put(
        self, entry: CacheEntry, vector: Vector, ttl_s: int | None, cap: int | None
    ) -> None:
        key = (pending_key if entry.pending else entry_key)(entry.scope, entry.id)
        mapping = entry_mapping(entry, vector)
        with redis_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hset(key, mapping=mapping)
                pipe.set(exact_key(entry.scope, entry.exact), entry.id)
                if ttl_s:
                    pipe.expire(key, ttl_s)
                    pipe.expire(exact_key(entry.scope, entry.exact), ttl_s)
                expires = entry.created_at + ttl_s if ttl_s else float("inf")
                counted = namespace_key(entry.namespace, entry.tenant)
                pipe.zadd(counted, {key: expires})
                pipe.sadd(NAMESPACES_KEY, namespace_member(entry.namespace, entry.tenant))
                pipe.zremrangebyscore(counted, "-inf", time.time())
                pipe.zcard(counted)
                results = await pipe.execute()
            size = int(results[-1])
            if cap is not None and size > cap:
                await self._evict(counted, size - cap)

    async def confirm(self, scope: str, entry_id: str, asker: str, needed: int) -> bool:
        return await self._released(scope, entry_id, asker, max(1, needed))

    async def release(self, scope: str, entry_id: str) -> bool:
        return await self._released(scope, entry_id, "", 0)

    async def _released(self, scope: str, entry_id: str, asker: str, needed: int) -> bool:
        pending, served = pending_key(scope, entry_id), entry_key(scope, entry_id)
        with redis_errors():
            answer = await self._release(
                keys=[pending, askers_key(scope, entry_id), served], args=[asker, needed]
            )
            if int(answer[0]) == 1:  # the tenant's count now names the released key
                namespace = namespace_key(as_text(answer[1]), as_text(answer[2]))
                score = await self._redis.zscore(namespace, pending)
                if score is not None:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        pipe.zadd(namespace, {served: score})
                        pipe.zrem(namespace, pending)
                        await pipe.execute()
        return int(answer[0]) in (1, 2)

    async def discard(self, scope: str, entry_id: str) -> None:
        key = pending_key(scope, entry_id)
        with redis_errors():
            found = await self._redis.hmget(key, ["exact", "namespace", "tenant"])
            if found[0] is None:
                return
            exact, namespace = as_text(found[0]), as_text(found[1])
            await self._discard(
                keys=[key, askers_key(scope, entry_id), exact_key(scope, exact)], args=[entry_id]
            )
            await self._redis.zrem(namespace_key(namespace, as_text(found[2])), key)

    async def _evict(self, counted: str, count: int) -> None:
        """Evict the ``count`` entries of the sorted set ``counted`` closest to expiry."""
        oldest = cast(list[tuple[bytes, float]], await self._redis.zpopmin(counted, count))
        keys = [as_text(member) for member, _ in oldest]
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
                    pipe.delete(exact_key(as_text(scope), as_text(exact)))
                    pipe.delete(labels_key(as_text(scope), key.rsplit(":", 1)[-1]))
            await pipe.execute()

    async def count(self, namespace: str, tenant: str | None = None) -> int:
        if tenant is not None:
            return (await self._counts([(namespace, tenant)])).get(namespace, 0)
        pairs = [pair for pair in await self._pairs() if pair[0] == namespace]
        return (await self._counts(pairs)).get(namespace, 0)

    async def sizes(self, limit: int = 1000) -> dict[str, int]:
        pairs = await self._pairs()
        names = set(sorted({namespace for namespace, _ in pairs})[:limit])
        return await self._counts([pair for pair in pairs if pair[0] in names])

    async def _pairs(self) -> list[tuple[str, str | None]]:
        """Every (namespace, tenant) that has had an entry. A set kept at admission, not a
        SCAN: a SCAN walks the whole keyspace (every entry) on each metrics refresh."""
        with redis_errors():
            members = await self._redis.smembers(NAMESPACES_KEY)
        pairs = (namespace_pair(as_text(member)) for member in members)
        return sorted(pairs, key=lambda pair: (pair[0], pair[1] or ""))

    async def _counts(self, pairs: list[tuple[str, str | None]]) -> dict[str, int]:
        """Live entries per namespace, summed over the tenants in ``pairs``."""
        now = time.time()
        with redis_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                for namespace, tenant in pairs:
                    pipe.zcount(namespace_key(namespace, tenant), now, "+inf")
                counts = await pipe.execute()
        totals: dict[str, int] = {}
        for (namespace, _), n in zip(pairs, counts, strict=True):
            totals[namespace] = totals.get(namespace, 0) + int(n)
        return totals

    async def guard(
        self,
        scope: str,
        entry_id: str,
        *,
        min_similarity: float | None = None,
        quarantine: bool = False,
    ) -> bool:
        key = entry_key(scope, entry_id)
        with redis_errors():
            current = await self._redis.hmget(key, ["id", "min_similarity"])
            if current[0] is None:
                return False
            mapping: dict[Any, Any] = {}
            if min_similarity is not None:
                old = float(as_text(current[1])) if current[1] else -1.0
                mapping["min_similarity"] = repr(max(old, min_similarity))
            if quarantine:
                mapping["quarantined"] = "1"
            if mapping:
                await self._redis.hset(key, mapping=mapping)
        return True

    async def restore(
        self, scope: str, entry_id: str, *, min_similarity: float | None, quarantined: bool
    ) -> bool:
        key = entry_key(scope, entry_id)
        # Neither field is indexed: "" reads as no bar, anything but "1" as not quarantined.
        bar = "" if min_similarity is None else repr(min_similarity)
        with redis_errors():
            if not await self._redis.exists(key):
                return False
            mapping: dict[Any, Any] = {"min_similarity": bar, "quarantined": str(int(quarantined))}
            await self._redis.hset(key, mapping=mapping)
        return True

    async def thresholds(self) -> dict[str, float]:
        with redis_errors():
            raw = await self._redis.hgetall(THRESHOLDS_KEY)
        return {as_text(name): float(as_text(value)) for name, value in raw.items()}

    async def set_threshold(self, namespace: str, value: float | None) -> None:
        with redis_errors():
            if value is None:
                await self._redis.hdel(THRESHOLDS_KEY, namespace)
            else:
                await self._redis.hset(THRESHOLDS_KEY, namespace, repr(value))

    async def ping(self) -> None:
        """Raise ``StoreError`` unless Redis answers."""
        with redis_errors():
            await self._redis.ping()
