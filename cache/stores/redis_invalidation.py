"""The Redis store's invalidation (``cache.invalidation``): walk the sorted sets that may hold
the entries asked for, read the few fields a filter needs, delete the matches.

The sets walked are each (namespace, tenant) pair's counted set ``vc:n:<ns>:<tenant>`` and
its copies sets ``vc:m:<vid>:...`` of the versions the namespace's state names (serving,
target, previous: the only versions copies are written or kept for), all of them when no
namespace or tenant narrows the walk. Every entry, pending or served, copy or not, is in one
of them (``cache.stores.redis``, ``cache.stores.redis_versions``). A deletion by id reads
only the members the server's ZSCAN MATCH finds for the id and its copies' ids
(``cache.versions.copy_id``). An entry is deleted by one script on its scope's slot (a
Redis Cluster too), pipelined: its pending and served hashes (a release may RENAME one into
the other meanwhile), labels, askers, and its exact pointer if that still names it; then
both names leave the set, so counts and caps stay right.
"""

from __future__ import annotations

import re

from cache.invalidation import MATCHED_FIELDS, Invalidation
from cache.redis_client import RedisClient, as_text, redis_errors
from cache.stores.redis_labels import labels_key
from cache.stores.redis_layout import (
    NAMESPACES_KEY,
    askers_key,
    entry_key,
    exact_key,
    namespace_key,
    namespace_pair,
    pending_key,
)
from cache.stores.redis_versions import VERSIONS_KEY, copies_key, version_states
from cache.versions import copy_id

# Delete one entry (KEYS: pending, served, labels, askers, exact pointer; ARGV: id): both of
# its hashes, its labels and askers, and the pointer if it still names it. 1 when it existed.
DELETE_ENTRY = """
local existed = redis.call('DEL', KEYS[1], KEYS[2])
redis.call('DEL', KEYS[3], KEYS[4])
if redis.call('GET', KEYS[5]) == ARGV[1] then redis.call('DEL', KEYS[5]) end
if existed > 0 then return 1 end
return 0
"""

_MEMBER = re.compile(r"vc:[ep]:\{([^}]*)\}:(.+)")
_FIELDS = [*MATCHED_FIELDS, "exact"]
_PAGE = 500
_SCAN = 1000


class RedisInvalidation:
    """The invalidation method of ``RedisStore`` (a mixin: the store module is full)."""

    _redis: RedisClient

    async def invalidate(self, which: Invalidation) -> int:
        with redis_errors():  # once per call, so the deletions can go in pipelines (EVALSHA)
            sha = as_text(await self._redis.script_load(DELETE_ENTRY))
        if which.entry is not None:
            which = await self._from_original(which)
        deleted = 0
        for key, patterns in (await self._sets_for(which)).items():
            members = await self._members(key, patterns)
            for start in range(0, len(members), _PAGE):
                page = members[start : start + _PAGE]
                deleted += await self._delete_matches(key, page, which, sha)
        return deleted

    async def _sets_for(self, which: Invalidation) -> dict[str, list[str] | None]:
        """The sorted sets that may hold entries ``which`` matches, each with the patterns
        of the members worth reading (None: every member)."""
        with redis_errors():
            members = await self._redis.smembers(NAMESPACES_KEY)
            states = version_states(await self._redis.hgetall(VERSIONS_KEY))
        found: dict[str, list[str] | None] = {}
        for member in sorted(as_text(m) for m in members):
            namespace, tenant = namespace_pair(member)
            if which.namespace not in (None, namespace):
                continue
            state = states.get(namespace)
            versions = (
                [v for v in (state.serving, state.target, state.previous) if v] if state else []
            )
            patterns = _id_patterns(which.entry, versions)
            if tenant is None:  # an early namespace-wide set: any tenant's entries
                found[namespace_key(namespace, None)] = patterns
                continue
            if which.tenant not in (None, tenant):
                continue
            found[namespace_key(namespace, tenant)] = patterns
            for version in versions:
                found[copies_key(version, namespace, tenant)] = patterns
        return found

    async def _from_original(self, which: Invalidation) -> Invalidation:
        """``which`` naming the entry its id's entry was copied from, when that is a copy
        (after a cutover a namespace serves copies): the original and all its copies go."""
        named = f"*:{which.entry}"
        for key in await self._sets_for(which):
            for member in await self._members(key, [named]):
                with redis_errors():
                    origin = await self._redis.hget(member, "origin")
                if origin:
                    return which.model_copy(update={"entry": as_text(origin)})
        return which

    async def _members(self, key: str, patterns: list[str] | None) -> list[str]:
        """The members of the sorted set ``key`` (those ``patterns`` match, if given: the
        server filters them, so a deletion by id reads no entry it does not delete)."""
        found: list[str] = []
        with redis_errors():
            wanted: list[str | None] = [*patterns] if patterns is not None else [None]
            for pattern in wanted:
                scan = self._redis.zscan_iter(key, match=pattern, count=_SCAN)
                found += [as_text(m) async for m, _ in scan]
        return found

    async def _delete_matches(
        self, key: str, members: list[str], which: Invalidation, sha: str
    ) -> int:
        """Delete the entries among ``members`` of the sorted set ``key`` that ``which``
        matches, and drop them from the set."""
        with redis_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                for member in members:
                    pipe.hmget(member, _FIELDS)
                rows = await pipe.execute()
                dropped = []
                for member, row in zip(members, rows, strict=True):
                    parts = _MEMBER.fullmatch(member)
                    if row[0] is None or parts is None:  # expired (put drops it), or no entry
                        continue
                    fields = dict(zip(_FIELDS, (as_text(v or b"") for v in row), strict=True))
                    if not which.matches(fields):
                        continue
                    scope, entry_id = parts.groups()
                    keys = [
                        pending_key(scope, entry_id),
                        entry_key(scope, entry_id),
                        labels_key(scope, entry_id),
                        askers_key(scope, entry_id),
                        exact_key(scope, fields["exact"]),
                    ]
                    pipe.evalsha(sha, len(keys), *keys, entry_id)
                    dropped += keys[:2]
                deleted = sum(int(n) for n in await pipe.execute())
            if dropped:
                await self._redis.zrem(key, *dropped)
        return deleted


def _id_patterns(entry: str | None, versions: list[str]) -> list[str] | None:
    """ZSCAN patterns of the members that may be entry ``entry`` or one of its copies under
    ``versions`` (``cache.versions.copy_id``); None (every member) when no id is given. Ids
    hold no glob characters (``cache.invalidation.ENTRY_ID_PATTERN``)."""
    if entry is None:
        return None
    return [f"*:{entry}", *(f"*:{copy_id(entry, version)}" for version in versions)]
