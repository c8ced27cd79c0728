"""The Redis store's layout: key names, the fields of an entry's hash, and the Lua scripts
that change several keys at once (``cache.stores.redis`` documents the whole layout)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cache.embedder import Vector
from cache.redis_client import as_text
from cache.schema import CacheEntry

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
VERSION_FIELDS = ("base", "prompt", "origin")
"""Text fields an entry admitted before embedding versions lacks: read back as ""."""
FIELDS = (
    *TEXT_FIELDS, *VERSION_FIELDS, "created_at", "min_similarity", "quarantined", "answered_by",
    "labelled", "ttl_s",
)  # fmt: skip


def entry_key(scope: str, entry_id: str) -> str:
    return f"{ENTRY_PREFIX}{{{scope}}}:{entry_id}"


def pending_key(scope: str, entry_id: str) -> str:
    return f"vc:p:{{{scope}}}:{entry_id}"


def askers_key(scope: str, entry_id: str) -> str:
    return f"vc:a:{{{scope}}}:{entry_id}"


# Release a pending entry: RENAME it into the index's prefix (TTL kept), once ``needed``
# distinct askers have been counted (needed 0: at once). Atomic, so two replicas counting
# the last askers at the same time release it once. Returns {1, namespace, tenant} when
# released now, {2} when it was already servable, {0} when not (yet) or gone.
RELEASE = """
if redis.call('EXISTS', KEYS[3]) == 1 then return {2} end
if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
if tonumber(ARGV[2]) > 0 then
  redis.call('SADD', KEYS[2], ARGV[1])
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
  if redis.call('SCARD', KEYS[2]) < tonumber(ARGV[2]) then return {0} end
end
local owner = redis.call('HMGET', KEYS[1], 'namespace', 'tenant')
redis.call('RENAME', KEYS[1], KEYS[3])
redis.call('DEL', KEYS[2])
return {1, owner[1], owner[2]}
"""

# Drop a pending entry, its askers, and its exact pointer if that still names it.
DISCARD = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
if redis.call('GET', KEYS[3]) == ARGV[1] then redis.call('DEL', KEYS[3]) end
return 1
"""

# The entry an exact pointer names, served (0) or pending (1), with FIELDS, in one round trip
# (GET, then HMGET, had been two on every exact hit). The entry keys are built here, not
# declared, since the id is known only once the pointer is read; they share the pointer's
# {scope} hash slot, so a Redis Cluster runs this on the one node that holds them all.
EXACT = """
local id = redis.call('GET', KEYS[1])
if not id then return nil end
for i, prefix in ipairs({ARGV[1], ARGV[2]}) do
  local fields = redis.call('HMGET', prefix .. id, unpack(ARGV, 3))
  if fields[1] then return {i - 1, fields} end
end
return nil
"""


def exact_key(scope: str, exact: str) -> str:
    return f"vc:x:{{{scope}}}:{exact}"


NAMESPACES_KEY = "vc:namespaces"
Doc = tuple[str, str | None, dict[str, Any]]  # a search result: key, distance, entry fields


def namespace_key(namespace: str, tenant: str | None) -> str:
    """The sorted set that counts (and caps) one tenant's entries in ``namespace``. A
    namespace has no ``:`` (``cache.keys.NAMESPACE_PATTERN``), so the pair reads back
    unambiguously; ``tenant`` None is the namespace-wide set of schema 2's first releases,
    still counted until its entries expire. No hash tag: each set sits in its own slot."""
    return f"vc:n:{namespace}" if tenant is None else f"vc:n:{namespace}:{tenant}"


def namespace_member(namespace: str, tenant: str) -> str:
    """A (namespace, tenant) pair as a member of ``NAMESPACES_KEY``."""
    return f"{namespace}:{tenant}"


def namespace_pair(member: str) -> tuple[str, str | None]:
    """``namespace_member`` read back (an older member, a bare namespace: tenant None)."""
    namespace, _, tenant = member.partition(":")
    return namespace, tenant if _ else None


def entry_from(values: dict[str, Any], pending: bool = False) -> CacheEntry:
    floor = values.get("min_similarity")
    answered_by = values.get("answered_by")
    ttl = values.get("ttl_s")
    return CacheEntry(
        **{name: as_text(values[name]) for name in TEXT_FIELDS},
        **{name: as_text(values.get(name) or "") for name in VERSION_FIELDS},
        answered_by=as_text(answered_by) if answered_by else None,
        created_at=float(as_text(values["created_at"])),
        ttl_s=int(as_text(ttl)) if ttl else None,
        min_similarity=float(as_text(floor)) if floor else None,
        quarantined=as_text(values.get("quarantined") or "") == "1",
        labelled=as_text(values.get("labelled") or "") == "1",
        pending=pending,
    )


def entry_mapping(entry: CacheEntry, vector: Vector) -> dict[Any, Any]:
    """The fields of an entry's hash as ``put`` writes them (guards and labels are set
    later, by their own commands)."""
    mapping: dict[Any, Any] = {
        **{name: getattr(entry, name) for name in (*TEXT_FIELDS, *VERSION_FIELDS)},
        "created_at": entry.created_at,
        "vec": vector.astype(np.float32).tobytes(),
    }
    if entry.answered_by is not None:
        mapping["answered_by"] = entry.answered_by
    if entry.ttl_s is not None:
        mapping["ttl_s"] = entry.ttl_s
    return mapping
