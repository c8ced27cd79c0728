"""The Redis store's sliding expiry (``cache.sliding_ttl``): a served entry's keys live its
TTL again from now, and its score in ``vc:n:<namespace>:<tenant>`` moves with them, so the
eviction at the cap (``ZPOPMIN``: closest to expiry first) takes the least recently served.
"""

from __future__ import annotations

import time

from cache.redis_client import RedisClient, redis_errors
from cache.schema import CacheEntry
from cache.stores.redis_labels import labels_key
from cache.stores.redis_layout import entry_key, exact_key, namespace_key

# KEYS: the entry's hash, its exact pointer, its labels (one {scope} slot); ARGV: the entry
# id, the TTL in seconds. EXPIRE ... GT never shortens a life (Redis >= 7.0); the pointer
# is extended only while it names this entry (a later admission may have taken it over).
TOUCH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('EXPIRE', KEYS[1], ARGV[2], 'GT')
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('EXPIRE', KEYS[2], ARGV[2], 'GT') end
redis.call('EXPIRE', KEYS[3], ARGV[2], 'GT')
return 1
"""


class RedisExpiry:
    """The expiry methods of ``RedisStore`` (a mixin: the store module is full)."""

    _redis: RedisClient

    async def touch(self, entry: CacheEntry, ttl_s: int) -> bool:
        key = entry_key(entry.scope, entry.id)
        keys = [key, exact_key(entry.scope, entry.exact), labels_key(entry.scope, entry.id)]
        expires = time.time() + ttl_s
        with redis_errors():
            if not await self._redis.register_script(TOUCH)(keys=keys, args=[entry.id, ttl_s]):
                return False
            # XX: an entry evicted meanwhile is not counted again; GT: never earlier.
            counted = namespace_key(entry.namespace, entry.tenant)
            await self._redis.zadd(counted, {key: expires}, xx=True, gt=True)
        return True
