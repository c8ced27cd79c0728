"""The Redis store's embedding versions (``cache.versions``, ``cache.migration``):

    vc:versions                        hash: namespace -> its ``VersionState`` as JSON,
                                       changed only by compare-and-set (``SET_VERSION``)
    vc:m:<vid>:{vc:n:<ns>:<tenant>}    sorted set: one tenant's copies of version <vid> in a
                                       namespace (entries of a version it does not serve),
                                       scored by expiry; not counted, not capped
    vc:mig:<ns>:<vid>                  string: the ``MigrationProgress`` to version <vid>, JSON
    vc:r:<ns>:<vid>                    hash: shadow counts of version <vid>, field
                                       ``<dimension>=<value>|<counter>`` (HINCRBY)

``<vid>`` is ``version_id(fingerprint)``. A copy's hash, exact pointer and labels are an
entry's (``vc:e:{<scope>}:<id>``...) in its version's scope. A copies set's hash tag is the
name of the tenant's counted set ``vc:n:<ns>:<tenant>`` (which has none: Redis hashes the whole
name), so both sit in one slot and a cutover swaps them with RENAME in one script on a Redis
Cluster too (``same_slot``). Deviates from design20's ``vc:m:<vid>:<ns>:<tenant>`` for that.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any, cast

from pydantic import ValidationError

from cache.embedder import Vector
from cache.redis_client import RedisClient, as_text, redis_errors
from cache.schema import CacheEntry
from cache.stores.redis_labels import labels_key
from cache.stores.redis_layout import (
    FIELDS,
    NAMESPACES_KEY,
    askers_key,
    entry_from,
    entry_key,
    entry_mapping,
    exact_key,
    namespace_key,
    namespace_member,
    namespace_pair,
)
from cache.versions import MigrationProgress, VersionState, version_id

VERSIONS_KEY = "vc:versions"

# Compare-and-set a namespace's state (ARGV: namespace, expected JSON or "" for none, new
# JSON or "" to remove). 1 when set, 0 when the current state was not the expected one.
SET_VERSION = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[2] == '' then
  if current then return 0 end
elseif current ~= ARGV[2] then return 0 end
if ARGV[3] == '' then redis.call('HDEL', KEYS[1], ARGV[1])
else redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
return 1
"""

# Write a copy unless it exists (KEYS: entry, exact pointer; ARGV: expiry in unix ms or "",
# the entry id, then field/value pairs). The exact pointer is set only when absent (an
# admission's own pointer wins). 1 when written, 0 when it existed.
PUT_COPY = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
if ARGV[1] ~= '' then redis.call('PEXPIREAT', KEYS[1], ARGV[1]) end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[2], ARGV[2])
  if ARGV[1] ~= '' then redis.call('PEXPIREAT', KEYS[2], ARGV[1]) end
end
return 1
"""

# Swap one tenant's counted set (KEYS[1]) with a version's copies set (KEYS[2]); the former
# counted set becomes the serving version's copies set (KEYS[3]); KEYS[4] is scratch.
SWAP_COUNTS = """
local function move(source, target)
  if redis.call('EXISTS', source) == 0 then return end
  if redis.call('EXISTS', target) == 1 then
    redis.call('ZUNIONSTORE', target, 2, target, source, 'AGGREGATE', 'MAX')
    redis.call('DEL', source)
  else
    redis.call('RENAME', source, target)
  end
end
redis.call('DEL', KEYS[4])
move(KEYS[1], KEYS[4])
move(KEYS[2], KEYS[1])
move(KEYS[4], KEYS[3])
return 1
"""

# Delete an entry with its labels and askers, and its exact pointer if that still names it
# (KEYS: entry, labels, askers, pointer; ARGV: id). 1 when the entry existed.
PURGE_ENTRY = """
local existed = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2], KEYS[3])
if redis.call('GET', KEYS[4]) == ARGV[1] then redis.call('DEL', KEYS[4]) end
return existed
"""

_MEMBER = re.compile(r"vc:[ep]:\{([^}]*)\}:(.+)")
_PAGE = 200


def hash_tag(key: str) -> str:
    """What Redis Cluster hashes of ``key``: its ``{tag}`` when it has a non-empty one, or
    else the whole name."""
    start = key.find("{")
    end = key.find("}", start + 1) if start >= 0 else -1
    return key[start + 1 : end] if end > start + 1 else key


def same_slot(prefix: str, key: str) -> str:
    """A key named ``prefix`` in ``key``'s cluster slot (a tenant name holding ``}`` and no
    tag could only get its own: such a swap fails on a cluster, CROSSSLOT)."""
    return f"{prefix}{{{hash_tag(key)}}}"


def copies_key(embedder: str, namespace: str, tenant: str) -> str:
    return same_slot(f"vc:m:{version_id(embedder)}:", namespace_key(namespace, tenant))


def migration_key(namespace: str, target: str) -> str:
    return f"vc:mig:{namespace}:{version_id(target)}"


def shadow_key(namespace: str, target: str) -> str:
    return f"vc:r:{namespace}:{version_id(target)}"


class RedisVersions:
    """The version methods of ``RedisStore`` (a mixin: the store module is full)."""

    _redis: RedisClient

    async def versions(self) -> dict[str, VersionState]:
        with redis_errors():
            return version_states(await self._redis.hgetall(VERSIONS_KEY))

    async def set_version(
        self, namespace: str, state: VersionState | None, expected: VersionState | None
    ) -> bool:
        args = [namespace, _json(expected), _json(state)]
        with redis_errors():
            done = await self._redis.register_script(SET_VERSION)(keys=[VERSIONS_KEY], args=args)
        return bool(done)

    async def live_entries(
        self, namespace: str, embedder: str, cursor: str, count: int
    ) -> tuple[list[tuple[CacheEntry, float]], str]:
        # The cursor is JSON: the set walked, and the (score, member) last read there, or
        # "done" when it was read to its end. Sets are walked in name order.
        at: dict[str, Any] = json.loads(cursor) if cursor else {}
        found: list[tuple[CacheEntry, float]] = []
        for key in await self._version_sets(namespace, embedder):
            if at and (key < at["set"] or (key == at["set"] and at.get("done"))):
                continue
            after = (float(at["score"]), at["member"]) if at and key == at["set"] else None
            page, last = await self._walk(key, after, count)
            found.extend((e, s) for e, s in page if e.embedder == embedder and not e.pending)
            if last is not None:
                return found, json.dumps({"set": key, "score": repr(last[0]), "member": last[1]})
            at = {"set": key, "done": True}
            if len(found) >= count:
                return found, json.dumps(at)
        return found, ""

    async def _version_sets(self, namespace: str, embedder: str) -> list[str]:
        """The sorted sets that may hold ``namespace``'s entries of ``embedder``: each
        tenant's counted set and its copies set, in name order."""
        with redis_errors():
            members = await self._redis.smembers(NAMESPACES_KEY)
        keys = set()
        for member in members:
            name, tenant = namespace_pair(as_text(member))
            if name == namespace:
                keys.add(namespace_key(namespace, tenant))
                if tenant is not None:
                    keys.add(copies_key(embedder, namespace, tenant))
        return sorted(keys)

    async def _walk(
        self, key: str, after: tuple[float, str] | None, count: int
    ) -> tuple[list[tuple[CacheEntry, float]], tuple[float, str] | None]:
        """Up to ``count`` live entries of the sorted set ``key`` after (score, member)
        ``after``, in (expiry, name) order; and the last (score, member) read when the
        page was full (None: the set is read to its end)."""
        low = max(time.time(), after[0] if after else 0.0)
        ties = after is not None and after[0] == low
        with redis_errors():
            extra = await self._redis.zcount(key, low, low) if ties else 0
            rows = await self._redis.zrange(
                key, low, "+inf", byscore=True, offset=0, num=count + extra, withscores=True
            )
        members = [(as_text(m), float(s)) for m, s in cast(list[tuple[bytes, float]], rows)]
        if after is not None and ties:
            members = [(m, s) for m, s in members if s != after[0] or m > after[1]]
        members = members[:count]
        served = [(m, s) for m, s in members if m.startswith("vc:e:")]
        with redis_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                for member, _ in served:
                    pipe.hmget(member, list(FIELDS))
                values = await pipe.execute()
        page = []
        for (_, score), row in zip(served, values, strict=True):
            if row[0] is not None:  # else it expired or was evicted since
                page.append((entry_from(dict(zip(FIELDS, row, strict=True))), score))
        last = (members[-1][1], members[-1][0]) if len(members) == count else None
        return page, last

    async def put_copy(self, entry: CacheEntry, vector: Vector, expires_at: float) -> bool:
        if expires_at <= time.time():
            return False
        key = entry_key(entry.scope, entry.id)
        mapping = entry_mapping(entry, vector)
        if entry.min_similarity is not None:
            mapping["min_similarity"] = repr(entry.min_similarity)
        if entry.quarantined:
            mapping["quarantined"] = "1"
        expiry = "" if expires_at == float("inf") else str(int(expires_at * 1000))
        args = [expiry, entry.id, *(x for pair in mapping.items() for x in pair)]
        with redis_errors():
            script = self._redis.register_script(PUT_COPY)
            written = await script(keys=[key, exact_key(entry.scope, entry.exact)], args=args)
            # Counted even when it existed: a run killed between the two wrote the hash only.
            copies = copies_key(entry.embedder, entry.namespace, entry.tenant)
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zadd(copies, {key: expires_at})
                pipe.zremrangebyscore(copies, "-inf", time.time())  # the expired, as put does
                pipe.sadd(NAMESPACES_KEY, namespace_member(entry.namespace, entry.tenant))
                await pipe.execute()
        return bool(written)

    async def swap_counts(self, namespace: str, serving: str, other: str) -> None:
        with redis_errors():
            members = await self._redis.smembers(NAMESPACES_KEY)
            script = self._redis.register_script(SWAP_COUNTS)
            for member in sorted(as_text(m) for m in members):
                name, tenant = namespace_pair(member)
                if name != namespace or tenant is None:
                    continue
                counted = namespace_key(namespace, tenant)
                keys = [
                    counted,
                    copies_key(other, namespace, tenant),
                    copies_key(serving, namespace, tenant),
                    same_slot("vc:m:swap:", counted),
                ]
                await script(keys=keys)

    async def migration(self, namespace: str, target: str) -> MigrationProgress | None:
        with redis_errors():
            raw = await self._redis.get(migration_key(namespace, target))
        return MigrationProgress.model_validate_json(as_text(raw)) if raw else None

    async def set_migration(self, progress: MigrationProgress) -> None:
        with redis_errors():
            key = migration_key(progress.namespace, progress.target)
            await self._redis.set(key, progress.model_dump_json())

    async def purge_version(self, namespace: str, embedder: str) -> int:
        purged = 0
        for key in await self._version_sets(namespace, embedder):
            with redis_errors():
                members = [as_text(m) async for m, _ in self._redis.zscan_iter(key)]
            for start in range(0, len(members), _PAGE):
                purged += await self._purge(key, members[start : start + _PAGE], embedder)
        with redis_errors():
            await self._redis.delete(migration_key(namespace, embedder))
            await self._redis.delete(shadow_key(namespace, embedder))
        return purged

    async def _purge(self, key: str, members: list[str], embedder: str) -> int:
        """Delete the entries among ``members`` of the sorted set ``key`` that ``embedder``
        made; drop them, and members whose entry is gone, from the set."""
        with redis_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                for member in members:
                    pipe.hmget(member, ["embedder", "exact"])
                rows = await pipe.execute()
            script = self._redis.register_script(PURGE_ENTRY)
            purged, dropped = 0, []
            for member, (made_by, exact) in zip(members, rows, strict=True):
                parts = _MEMBER.fullmatch(member)
                if made_by is None or parts is None:
                    dropped.append(member)
                    continue
                if as_text(made_by) != embedder:
                    continue
                scope, entry_id = parts.groups()
                pointer = exact_key(scope, as_text(exact or ""))
                keys = [member, labels_key(scope, entry_id), askers_key(scope, entry_id), pointer]
                purged += int(await script(keys=keys, args=[entry_id]))
                dropped.append(member)
            if dropped:
                await self._redis.zrem(key, *dropped)
        return purged

    async def shadow_count(
        self, namespace: str, target: str, cohort: Mapping[str, str], fields: Mapping[str, int]
    ) -> None:
        key = shadow_key(namespace, target)
        with redis_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                for dimension, value in cohort.items():
                    for name, n in fields.items():
                        pipe.hincrby(key, f"{dimension}={value}|{name}", n)
                await pipe.execute()

    async def reset_shadow(self, namespace: str, target: str) -> None:
        with redis_errors():
            await self._redis.delete(shadow_key(namespace, target))

    async def shadow_counts(self, namespace: str, target: str) -> dict[str, dict[str, int]]:
        with redis_errors():
            raw = await self._redis.hgetall(shadow_key(namespace, target))
        counts: dict[str, dict[str, int]] = {}
        for field, value in raw.items():
            cohort, _, name = as_text(field).rpartition("|")
            counts.setdefault(cohort, {})[name] = int(as_text(value))
        return counts


def version_states(raw: Mapping[Any, Any]) -> dict[str, VersionState]:
    """The ``vc:versions`` hash as read (``HGETALL``), parsed."""
    states = {}
    for name, value in raw.items():
        try:
            states[as_text(name)] = VersionState.model_validate_json(as_text(value))
        except ValidationError:  # written by a later version: not this one's to read
            continue
    return states


def _json(state: VersionState | None) -> str:
    return state.model_dump_json() if state is not None else ""
