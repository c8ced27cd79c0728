"""The store's embedding-version API (``cache.versions``), held to one contract on every
store: in-process, Redis with the Query Engine, and a Redis Cluster."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from cache.keys import versioned_key
from cache.schema import CacheEntry
from cache.stores.base import Store
from cache.versions import MigrationProgress, VersionState
from tests.contract.test_store_contract import fresh, unit

OLD, NEW = "fp-old", "fp-new"


def made(namespace: str, embedder: str, *, tenant: str = "t") -> CacheEntry:
    base, prompt = fresh(), fresh()  # stores are shared across tests: scopes of their own
    scope, exact = versioned_key(base, prompt, embedder)
    return CacheEntry(
        id=uuid.uuid4().hex, scope=scope, exact=exact, namespace=namespace, tenant=tenant,
        model="m", text="q", response="{}", embedder=embedder, base=base, prompt=prompt,
        created_at=time.time(),
    )  # fmt: skip


def copy_of(entry: CacheEntry, embedder: str) -> CacheEntry:
    scope, exact = versioned_key(entry.base, entry.prompt, embedder)
    return entry.model_copy(
        update={"id": uuid.uuid4().hex, "scope": scope, "exact": exact, "embedder": embedder,
                "origin": entry.id, "labelled": False}
    )  # fmt: skip


async def test_version_state_changes_only_from_the_state_expected(store: Store) -> None:
    ns = fresh()
    first = VersionState(serving=OLD, changed_at=1.0)
    migrating = VersionState(serving=OLD, target=NEW, changed_at=2.0)
    assert await store.set_version(ns, first, None)
    assert not await store.set_version(ns, migrating, None)  # someone set it already
    assert await store.set_version(ns, migrating, first)
    assert not await store.set_version(ns, first, first)  # first is no longer current
    assert (await store.versions())[ns] == migrating
    assert await store.set_version(ns, None, migrating)
    assert ns not in await store.versions()


async def test_a_copy_is_searchable_in_its_own_scope_only_and_not_counted(store: Store) -> None:
    ns = fresh()
    original = made(ns, OLD)
    await store.put(original, unit(1), ttl_s=60, cap=None)
    copy = copy_of(original, NEW).model_copy(update={"min_similarity": 0.97, "quarantined": True})
    expires = time.time() + 60
    assert await store.put_copy(copy, unit(1, 0.1), expires)
    assert not await store.put_copy(copy, unit(1, 0.1), expires)  # idempotent
    assert [e.id for e, _ in await store.search(copy.scope, unit(1), k=5)] == [copy.id]
    assert [e.id for e, _ in await store.search(original.scope, unit(1), k=5)] == [original.id]
    found = await store.get_exact(copy.scope, copy.exact)
    assert found is not None
    assert (found.origin, found.embedder, found.base) == (original.id, NEW, original.base)
    assert (found.min_similarity, found.quarantined) == (0.97, True)  # guards copied
    assert await store.count(ns) == 1  # copies never count against the namespace


async def test_a_copy_keeps_an_exact_pointer_an_admission_set(store: Store) -> None:
    ns = fresh()
    original = made(ns, OLD)
    admitted = copy_of(original, NEW)  # the request path's dual write came first
    await store.put(admitted, unit(1), ttl_s=60, cap=None)
    late = copy_of(original, NEW)
    assert await store.put_copy(late, unit(1), time.time() + 60)
    found = await store.get_exact(late.scope, late.exact)
    assert found is not None and found.id == admitted.id


async def test_live_entries_pages_through_one_version_once(store: Store) -> None:
    ns = fresh()
    wanted = set()
    for tenant in ("a", "b"):
        for _ in range(7):
            item = made(ns, OLD, tenant=tenant)
            await store.put(item, unit(1), ttl_s=60, cap=None)
            wanted.add(item.id)
    other = made(ns, NEW)
    await store.put(other, unit(1), ttl_s=60, cap=None)
    pending = made(ns, OLD).model_copy(update={"pending": True})
    await store.put(pending, unit(1), ttl_s=60, cap=None)
    await store.put_copy(copy_of(made(ns, OLD), NEW), unit(1), time.time() + 60)
    seen: list[str] = []
    cursor, pages = "", 0
    while True:
        page, cursor = await store.live_entries(ns, OLD, cursor, 3)
        seen.extend(e.id for e, _ in page)
        assert all(expires > time.time() + 50 for _, expires in page)
        pages += 1
        assert pages < 50
        if not cursor:
            break
    assert sorted(seen) == sorted(wanted)  # each once: no pending, no other version


async def test_swapping_counts_counts_the_version_that_serves(store: Store) -> None:
    ns = fresh()
    olds = [made(ns, OLD) for _ in range(3)]
    for item in olds:
        await store.put(item, unit(1), ttl_s=60, cap=None)
        await store.put_copy(copy_of(item, NEW), unit(1), time.time() + 60)
    await store.put_copy(copy_of(made(ns, OLD), NEW), unit(1), time.time() + 60)
    assert await store.count(ns) == 3
    await store.swap_counts(ns, OLD, NEW)
    assert await store.count(ns) == 4
    assert (await store.sizes())[ns] == 4
    # The cap now evicts the serving version's entries, never the kept old ones.
    await store.put(made(ns, NEW), unit(1), ttl_s=60, cap=2)
    assert await store.count(ns) == 2
    assert all([await store.get_exact(e.scope, e.exact) for e in olds])
    await store.swap_counts(ns, NEW, OLD)  # rollback
    assert await store.count(ns) == 3


async def test_purge_removes_one_version_only(store: Store) -> None:
    ns = fresh()
    old = made(ns, OLD)
    await store.put(old, unit(1), ttl_s=60, cap=None)
    copies = [copy_of(old, NEW), copy_of(made(ns, OLD), NEW)]
    for copy in copies:
        await store.put_copy(copy, unit(1), time.time() + 60)
    progress = MigrationProgress(namespace=ns, source=OLD, target=NEW, done=True,
                                 started_at=1.0, updated_at=2.0)  # fmt: skip
    await store.set_migration(progress)
    await store.shadow_count(ns, NEW, {"all": "all"}, {"would_hit": 1})
    assert await store.purge_version(ns, NEW) == 2
    # A migration to the purged version would start afresh, its shadow counts too.
    assert await store.migration(ns, NEW) is None
    assert await store.shadow_counts(ns, NEW) == {}
    assert await store.search(copies[0].scope, unit(1), k=5) == []
    assert await store.get_exact(copies[0].scope, copies[0].exact) is None
    assert await store.get_exact(old.scope, old.exact) == old
    page, _ = await store.live_entries(ns, NEW, "", 10)
    assert page == []
    assert await store.purge_version(ns, NEW) == 0


async def test_migration_progress_and_shadow_counts_are_kept(store: Store) -> None:
    ns = fresh()
    assert await store.migration(ns, NEW) is None
    progress = MigrationProgress(
        namespace=ns, source=OLD, target=NEW, cursor="c", copied=3, started_at=1.0,
        updated_at=2.0,
    )  # fmt: skip
    await store.set_migration(progress)
    assert await store.migration(ns, NEW) == progress
    assert await store.migration(ns, OLD) is None
    await store.shadow_count(ns, NEW, {"all": "all", "language": "en"}, {"would_hit": 1})
    await store.shadow_count(ns, NEW, {"all": "all"}, {"would_hit": 2, "agree": 1})
    assert await store.shadow_counts(ns, NEW) == {
        "all=all": {"would_hit": 3, "agree": 1},
        "language=en": {"would_hit": 1},
    }
    assert await store.shadow_counts(ns, OLD) == {}


@pytest.mark.parametrize("count", [1, 2])
async def test_live_entries_skips_the_expired(store: Store, count: int) -> None:
    ns = fresh()
    gone = made(ns, OLD)
    await store.put(gone, unit(1), ttl_s=1, cap=None)
    kept = made(ns, OLD)
    await store.put(kept, unit(1), ttl_s=60, cap=None)
    await asyncio.sleep(1.1)  # bounded wait past the TTL
    seen: list[str] = []
    cursor = ""
    for _ in range(10):
        page, cursor = await store.live_entries(ns, OLD, cursor, count)
        seen.extend(e.id for e, _ in page)
        if not cursor:
            break
    assert seen == [kept.id]
