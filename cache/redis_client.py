"""Opening Redis for the cache, the audit queue and the ledger: one server or a Redis Cluster.

A single server (Redis Stack, Redis 8, or a managed endpoint that hides its shards behind a
proxy) gets ``redis.asyncio.Redis``; an OSS Redis Cluster (``redis_cluster: true``) gets
``redis.asyncio.RedisCluster``, which routes each command to the shard owning its key's
slot. Both speak the same command API, so callers hold a ``RedisClient`` either way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, RedisClusterException, RedisError

from cache.errors import StoreError
from cache.redis_replies import is_cluster_disabled


def _retry() -> Retry:
    """One quick retry on a broken connection. After Redis restarts, every pooled connection
    is dead, and without it the first command on each one fails (lookups fall open, served
    hits go unrecorded). Timeouts are not retried: a stalled Redis must not double the wait."""
    return Retry(ExponentialBackoff(cap=0.05, base=0.005), 1, supported_errors=(ConnectionError,))


RedisClient: TypeAlias = aioredis.Redis | RedisCluster


def connect(
    url: str,
    *,
    cluster: bool = False,
    timeout_s: float | None = None,
    connect_timeout_s: float = 2.0,
    max_connections: int | None = None,
) -> RedisClient:
    """A client for ``url``; connections are opened on first use.

    ``max_connections`` bounds the pool: on one server callers wait up to ``timeout_s`` for a
    free connection instead of failing with "Too many connections" under a burst; a cluster
    client keeps that many per node."""
    if cluster:
        return RedisCluster.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=connect_timeout_s,
            max_connections=max_connections or 100,
            retry=_retry(),
        )
    if max_connections is None:
        return aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=connect_timeout_s,
            retry=_retry(),
            retry_on_error=[ConnectionError],
        )
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=connect_timeout_s,
        retry=_retry(),
        retry_on_error=[ConnectionError],
    )
    return aioredis.Redis(connection_pool=pool)


async def topology_mismatch(client: RedisClient, url: str) -> str | None:
    """What is wrong when the server's cluster mode is not the one configured, else None.

    A plain client on a cluster node would fail later with MOVED on most keys; a cluster
    client on a single server fails at its first command. Both are said up front."""
    if isinstance(client, RedisCluster):
        try:
            await client.initialize()
        except RedisClusterException as exc:
            if is_cluster_disabled(str(exc)):
                return (
                    f"redis_cluster is true but Redis at {safe_url(url)} is not a cluster "
                    "node; set redis_cluster: false (VETCACHE_REDIS_CLUSTER=false)"
                )
            raise RedisError(str(exc)) from exc
        return None
    info = await client.info("cluster")
    if int(info.get("cluster_enabled", 0)):
        return (
            f"Redis at {safe_url(url)} is a cluster node; set redis_cluster: true "
            "(VETCACHE_REDIS_CLUSTER=true) so each command goes to the shard owning its key"
        )
    return None


@contextmanager
def redis_errors(error: type[Exception] = StoreError, doing: str = "") -> Iterator[None]:
    """Turn a Redis failure in the block into the caller's own ``error`` (``StoreError``,
    ``LedgerError``, ``QueueError``), its message prefixed with ``doing`` when given, the
    cause kept: the one place Redis' exceptions are translated. Where a reply means something
    (``cache.redis_replies``), catch ``ResponseError`` inside the block first."""
    try:
        yield
    except RedisError as exc:
        raise error(f"{doing}: {exc}" if doing else str(exc)) from exc


async def close(client: RedisClient) -> None:
    if isinstance(client, RedisCluster):
        await client.aclose()
    else:
        await client.aclose(close_connection_pool=True)


def as_text(value: Any) -> str:
    """A Redis reply value as text (bytes are UTF-8)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def safe_url(url: str) -> str:
    """The URL without its password."""
    head, _, tail = url.rpartition("@")
    return f"redis://***@{tail}" if head else url
