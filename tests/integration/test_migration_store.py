"""Migration between embedding versions on real Redis (``cache.migration``): copies live in
the target version's scopes only, count swaps and purges touch one version, and a migrating
process killed with SIGKILL resumes to exactly one copy per live entry."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from cache.keys import versioned_key
from cache.migration import Migrator
from cache.redis_client import as_text
from cache.stores.redis import RedisStore
from tests.conftest import ROOT
from tests.migration_fakes import VersionEmbedder, fill

pytestmark = pytest.mark.integration

OLD, NEW = VersionEmbedder("a"), VersionEmbedder("b")
CHILD = """
import asyncio, sys
from cache.migration import Migrator
from cache.stores.redis import RedisStore
from tests.migration_fakes import VersionEmbedder

async def main(url, namespace):
    store = RedisStore(url)
    await store.open(32)
    migrator = Migrator(store, VersionEmbedder("a"), VersionEmbedder("b"), rate_per_s=40, batch=4)
    await migrator.run(namespace)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisStore]:
    opened = RedisStore(redis_url)
    await opened.open(OLD.dimension)
    try:
        yield opened
    finally:
        await opened.close()


async def entry_hashes(redis_url: str, namespace: str) -> list[dict[str, str]]:
    """Every entry hash of ``namespace`` in Redis, read raw (not through the store)."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        found = []
        async for key in client.scan_iter(match="vc:e:*", count=1000):
            fields = await client.hmget(key, ["namespace", "scope", "embedder", "base", "prompt",
                                              "origin", "id"])  # fmt: skip
            if fields[0] is not None and as_text(fields[0]) == namespace:
                names = ("namespace", "scope", "embedder", "base", "prompt", "origin", "id")
                found.append({n: as_text(v or "") for n, v in zip(names, fields, strict=True)})
        return found
    finally:
        await client.aclose()


def assert_no_scope_mixes_versions(hashes: list[dict[str, str]]) -> None:
    """Every entry sits in the scope of its own embedder: a search of one version's scope
    can never meet a vector of another version."""
    by_scope: dict[str, set[str]] = {}
    for fields in hashes:
        by_scope.setdefault(fields["scope"], set()).add(fields["embedder"])
        expected = versioned_key(fields["base"], fields["prompt"], fields["embedder"])[0]
        assert fields["scope"] == expected
    assert all(len(embedders) == 1 for embedders in by_scope.values())


async def test_copies_are_found_in_the_target_version_only(
    store: RedisStore, redis_url: str
) -> None:
    ns = uuid.uuid4().hex[:12]
    entries = await fill(store, OLD, ns, 12, tenants=("t1", "t2"))
    progress = await Migrator(store, OLD, NEW, rate_per_s=None, batch=5).run(ns)
    assert (progress.done, progress.copied) == (True, 12)
    for entry in entries:
        target_scope = versioned_key(entry.base, entry.prompt, NEW.fingerprint)[0]
        new = await store.search(target_scope, await NEW.embed(entry.text), k=20)
        assert new[0][0].origin == entry.id and new[0][1] == pytest.approx(1.0, abs=1e-4)
        assert {e.embedder for e, _ in new} == {NEW.fingerprint}
        old = await store.search(entry.scope, await OLD.embed(entry.text), k=20)
        assert old[0][0].id == entry.id
        assert {e.embedder for e, _ in old} == {OLD.fingerprint}
    hashes = await entry_hashes(redis_url, ns)
    assert len(hashes) == 24
    assert_no_scope_mixes_versions(hashes)


async def test_swap_counts_then_purge_touch_one_version(store: RedisStore) -> None:
    ns = uuid.uuid4().hex[:12]
    entries = await fill(store, OLD, ns, 6, tenants=("t1", "t2", "t3"))
    await Migrator(store, OLD, NEW, rate_per_s=None).run(ns)
    extra = await fill(store, OLD, ns, 1)  # admitted after the migration: no copy yet
    assert await store.count(ns) == 7
    await store.swap_counts(ns, OLD.fingerprint, NEW.fingerprint)  # cutover
    assert await store.count(ns) == 6
    assert (await store.sizes())[ns] == 6
    assert await store.count(ns, "t1") == 2
    assert await store.purge_version(ns, OLD.fingerprint) == 7  # retention over
    assert await store.count(ns) == 6
    for entry in [*entries, *extra]:
        assert await store.get_exact(entry.scope, entry.exact) is None
        target = versioned_key(entry.base, entry.prompt, NEW.fingerprint)
        assert (await store.get_exact(*target) is not None) == (entry not in extra)


async def test_a_killed_migration_resumes_to_one_copy_per_entry(
    store: RedisStore, redis_url: str
) -> None:
    ns = uuid.uuid4().hex[:12]
    entries = await fill(store, OLD, ns, 60, tenants=("t1", "t2"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, redis_url, ns, env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # bounded: until it saved a few batches
            saved = await store.migration(ns, NEW.fingerprint)
            if (saved is not None and saved.copied >= 12) or child.returncode is not None:
                break
            await asyncio.sleep(0.05)
        assert child.returncode is None, "the migration ended before it was killed"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        output, _ = await asyncio.wait_for(child.communicate(), timeout=10)
    assert child.returncode == -signal.SIGKILL, output.decode(errors="replace")
    killed = await store.migration(ns, NEW.fingerprint)
    assert killed is not None and not killed.done and killed.copied < 60
    resumed = await Migrator(store, OLD, NEW, rate_per_s=None, batch=7).run(ns)
    assert resumed.done and resumed.started_at == killed.started_at
    hashes = await entry_hashes(redis_url, ns)
    origins = [h["origin"] for h in hashes if h["embedder"] == NEW.fingerprint]
    assert sorted(origins) == sorted(e.id for e in entries)  # exactly one copy each
    assert_no_scope_mixes_versions(hashes)
    assert await store.count(ns) == 60
