"""The Redis store's invalidation (``cache.invalidation``): walk the sorted sets that may hold
the entries asked for, read the few fields a filter needs, delete the matches.

The sets walked are each (namespace, tenant) pair's counted set ``vc:n:<ns>:<tenant>`` and
its copies sets ``vc:m:<vid>:...`` of the versions the namespace's state names (serving,
target, previous: the only versions copies are written or kept for), all of them when no
namespace or tenant narrows the walk. Every entry, pending or served, copy or not, is in one
of them (``cache.stores.redis``, ``cache.stores.redis_versions``). An entry is deleted by
one script on its scope's slot (a Redis Cluster too): its pending and served hashes (a
release may RENAME one into the other meanwhile), labels, askers, and its exact pointer if
that still names it; then both names leave the set, so counts and caps stay right.
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
_PAGE = 200


class RedisInvalidation:
    """The invalidation method of ``RedisStore`` (a mixin: the store module is full)."""

    _redis: RedisClient

    async def invalidate(self, which: Invalidation) -> int:
        deleted = 0
        for key in await self._sets_for(which):
            with redis_errors():
                members = [as_text(m) async for m, _ in self._redis.zscan_iter(key)]
            for start in range(0, len(members), _PAGE):
                deleted += await self._delete_matches(key, members[start : start + _PAGE], which)
        return deleted

    async def _sets_for(self, which: Invalidation) -> list[str]:
        """The sorted sets that may hold entries ``which`` matches, in name order."""
        with redis_errors():
            members = await self._redis.smembers(NAMESPACES_KEY)
            raw_states = await self._redis.hgetall(VERSIONS_KEY)
        states = version_states(raw_states)
        keys: set[str] = set()
        for member in members:
            namespace, tenant = namespace_pair(as_text(member))
            if which.namespace not in (None, namespace):
                continue
            if tenant is None:  # an early namespace-wide set: any tenant's entries
                keys.add(namespace_key(namespace, None))
                continue
            if which.tenant not in (None, tenant):
                continue
            keys.add(namespace_key(namespace, tenant))
            state = states.get(namespace)
            versions = (state.serving, state.target, state.previous) if state else ()
            keys.update(copies_key(v, namespace, tenant) for v in versions if v is not None)
        return sorted(keys)

    async def _delete_matches(self, key: str, members: list[str], which: Invalidation) -> int:
        """Delete the entries among ``members`` of the sorted set ``key`` that ``which``
        matches, and drop them from the set."""
        with redis_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                for member in members:
                    pipe.hmget(member, _FIELDS)
                rows = await pipe.execute()
            script = self._redis.register_script(DELETE_ENTRY)
            deleted, dropped = 0, []
            for member, row in zip(members, rows, strict=True):
                parts = _MEMBER.fullmatch(member)
                if row[0] is None or parts is None:  # expired (put drops it) or not an entry
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
                deleted += int(await script(keys=keys, args=[entry_id]))
                dropped += [keys[0], keys[1]]
            if dropped:
                await self._redis.zrem(key, *dropped)
        return deleted
