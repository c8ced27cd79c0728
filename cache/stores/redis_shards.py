"""What a Redis Cluster needs beyond one server: naming an index on every primary, and
reading the raw reply of an ``FT.SEARCH`` sent to one node (see ``cache.stores.redis``)."""

from __future__ import annotations

from typing import Any

from redis.asyncio.cluster import RedisCluster

from cache.errors import StoreError


def search_reply(raw: Any) -> list[tuple[str, dict[str, Any]]]:
    """(key, fields by name) of each result of a raw ``FT.SEARCH ... RETURN ...`` reply, in
    RESP3 (a map) or RESP2 (total, then key and field list per result) form.

    Parsed here rather than by redis-py's ``ft().search()``: that builds a ``Result`` of
    ``Document`` objects through several layers per call (~15% of a cache hit's time on the
    event loop, profiled), and a cluster client cannot name the node for it anyway."""
    hits: list[tuple[str, dict[str, Any]]] = []
    if isinstance(raw, dict):
        for result in _by_name(raw).get("results") or []:
            item = _by_name(result)
            hits.append((_text(item["id"]), _by_name(item.get("extra_attributes") or {})))
        return hits
    for key, fields in zip(raw[1::2], raw[2::2], strict=True):
        pairs = fields or []  # nil: the hash expired while the query ran
        hits.append((_text(key), _by_name(dict(zip(pairs[::2], pairs[1::2], strict=True)))))
    return hits


def _by_name(mapping: dict[Any, Any]) -> dict[str, Any]:
    return {_text(name): value for name, value in mapping.items()}


def shard_tags(client: RedisCluster) -> dict[str, str]:
    """For each primary ("host:port"), the smallest number whose hash slot it owns.

    Deterministic for one slot map, so every replica names the same index on each shard."""
    primaries = {node.name for node in client.get_primaries()}
    tags: dict[str, str] = {}
    for number in range(1_000_000):  # a primary owning a single slot is found in ~16k tries
        node = client.get_node_from_key(f"{{{number}}}")
        if node is not None and node.name in primaries:
            tags.setdefault(node.name, str(number))
            if len(tags) == len(primaries):
                break
    if len(tags) != len(primaries):
        raise StoreError("cannot name an index for every primary: some own no slot")
    return tags


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
