"""The Redis store's labels (``cache.neighbourhood``): one hash per entry,

    vc:l:{<scope>}:<id>       hash: label id -> the label as JSON

in the entry's hash slot (its scope's tag), so adding a label, trimming the set and flagging
the entry is one script on one node, on a Redis Cluster too. The hash expires with the entry
and is deleted when the entry is evicted over its namespace's cap.
"""

from __future__ import annotations

from pydantic import ValidationError

from cache.neighbourhood import LABELS_KEPT, Label
from cache.redis_client import RedisClient, as_text, redis_errors
from cache.stores.redis_layout import entry_key

# Keep a label (ARGV: id, JSON, "1" when false, the number kept) for an existing entry
# (KEYS: entry, labels); over the number kept drop the oldest correct label, or else the
# oldest; expire with the entry; a false label flags the entry. 1 when kept, 0 when gone.
ADD_LABEL = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
while redis.call('HLEN', KEYS[2]) > tonumber(ARGV[4]) do
  local all = redis.call('HGETALL', KEYS[2])
  local drop, oldest, correct = nil, nil, false
  for i = 1, #all, 2 do
    local label = cjson.decode(all[i + 1])
    local this = label['correct'] == true
    local at = tonumber(label['created_at']) or 0
    if (this and not correct) or (this == correct and (oldest == nil or at < oldest)) then
      drop, oldest, correct = all[i], at, this
    end
  end
  redis.call('HDEL', KEYS[2], drop)
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
if ARGV[3] == '1' then redis.call('HSET', KEYS[1], 'labelled', '1') end
return 1
"""


def labels_key(scope: str, entry_id: str) -> str:
    return f"vc:l:{{{scope}}}:{entry_id}"


class RedisLabels:
    """The label methods of ``RedisStore`` (a mixin: the store module is full)."""

    _redis: RedisClient

    async def add_label(self, scope: str, entry_id: str, label: Label) -> bool:
        keys = [entry_key(scope, entry_id), labels_key(scope, entry_id)]
        args = [label.id, label.model_dump_json(), "0" if label.correct else "1", LABELS_KEPT]
        with redis_errors():
            kept = await self._redis.register_script(ADD_LABEL)(keys=keys, args=args)
        return bool(kept)

    async def labels(self, scope: str, entry_id: str) -> list[Label]:
        with redis_errors():
            raw = await self._redis.hgetall(labels_key(scope, entry_id))
        found = []
        for value in raw.values():
            try:
                found.append(Label.model_validate_json(as_text(value)))
            except ValidationError:  # written by a later version: not this one's to read
                continue
        return found
