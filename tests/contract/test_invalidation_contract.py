"""Invalidation (``Store.invalidate``), held to one contract on every store: in-process,
Redis with the Query Engine, and a Redis Cluster. A deleted entry is gone from every layer
(exact pointer, search, labels, count), whatever state it was in (pending, a copy of another
embedding version), and nothing else is touched."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from cache.invalidation import Invalidation
from cache.neighbourhood import Label
from cache.schema import CacheEntry
from cache.stores.base import Store
from cache.stores.memory import MemoryStore
from cache.versions import VersionState, copy_of
from tests.contract.test_store_contract import fresh, unit
from tests.contract.test_versions_contract import NEW, OLD, made


def which(**conditions: Any) -> Invalidation:
    return Invalidation.model_validate(conditions)


def entry(namespace: str, *, tenant: str = "t", model: str = "m", age_s: float = 0.0) -> CacheEntry:
    return made(namespace, OLD, tenant=tenant).model_copy(
        update={"model": model, "created_at": time.time() - age_s}
    )


async def put(store: Store, *entries: CacheEntry) -> None:
    for item in entries:
        await store.put(item, unit(1, len(item.id) % 3), ttl_s=7200, cap=None)


async def test_an_entry_deleted_by_id_leaves_no_pointer_hit_label_or_count(store: Store) -> None:
    ns = fresh()
    doomed, kept = entry(ns), entry(ns)
    await put(store, doomed, kept)
    assert await store.add_label(
        doomed.scope, doomed.id, Label(id="l", correct=False, similarity=0.9)
    )
    assert await store.invalidate(which(entry=doomed.id)) == 1
    assert await store.get_exact(doomed.scope, doomed.exact) is None
    assert await store.search(doomed.scope, unit(1), k=5) == []
    assert await store.labels(doomed.scope, doomed.id) == []
    assert not await store.guard(doomed.scope, doomed.id, quarantine=True)  # gone, not revived
    assert await store.count(ns) == 1 and await store.count(ns, "t") == 1
    assert await store.get_exact(kept.scope, kept.exact) == kept
    assert await store.invalidate(which(entry=doomed.id)) == 0  # deleting twice: nothing


async def test_every_condition_given_must_hold(store: Store) -> None:
    ns, other, m1, m2 = fresh(), fresh(), fresh(), fresh()  # the stores are shared
    a_m1_old = entry(ns, tenant="a", model=m1, age_s=3600)
    a_m2 = entry(ns, tenant="a", model=m2)
    b_m1 = entry(ns, tenant="b", model=m1)
    elsewhere = entry(other, tenant="a", model=m1)
    await put(store, a_m1_old, a_m2, b_m1, elsewhere)
    hour_ago = datetime.fromtimestamp(time.time() - 1800, UTC)
    assert await store.invalidate(which(namespace=ns, created_before=hour_ago)) == 1
    assert await store.get_exact(a_m1_old.scope, a_m1_old.exact) is None
    assert await store.invalidate(which(namespace=ns, tenant="a", model=m1)) == 0
    assert await store.invalidate(which(namespace=ns, model=m1)) == 1  # b's
    assert await store.count(ns, "a") == 1 and await store.count(ns, "b") == 0
    assert await store.invalidate(which(tenant="a", model=m2)) == 1
    assert await store.count(ns) == 0
    assert await store.get_exact(elsewhere.scope, elsewhere.exact) == elsewhere
    assert await store.invalidate(which(namespace=other)) == 1
    assert await store.count(other) == 0


async def test_pending_entries_and_copies_of_other_versions_go_too(store: Store) -> None:
    ns = fresh()
    original = entry(ns)
    pending = entry(ns).model_copy(update={"pending": True})
    await put(store, original, pending)
    assert await store.set_version(
        ns, VersionState(serving=OLD, target=NEW, changed_at=time.time()), None
    )
    copy = copy_of(original, NEW)  # the id a migration gives it (cache.versions.copy_id)
    assert await store.put_copy(copy, unit(1), time.time() + 600)
    assert await store.invalidate(which(entry=original.id)) == 2  # the entry and its copy
    assert await store.get_exact(copy.scope, copy.exact) is None
    assert await store.search(copy.scope, unit(1), k=5) == []
    assert await store.live_entries(ns, NEW, "", 10) == ([], "")
    assert await store.invalidate(which(namespace=ns)) == 1  # the pending one
    assert not await store.release(pending.scope, pending.id)
    assert await store.count(ns) == 0


async def test_a_copys_id_deletes_the_entry_it_copies_and_every_copy(store: Store) -> None:
    ns = fresh()
    original = entry(ns)
    await put(store, original)
    state = VersionState(serving=NEW, previous=OLD, changed_at=time.time())  # after cutover
    assert await store.set_version(ns, state, None)
    copy = copy_of(original, NEW)
    assert await store.put_copy(copy, unit(1), time.time() + 600)
    assert await store.invalidate(which(entry=copy.id)) == 2  # what a rollback would serve too
    assert await store.get_exact(original.scope, original.exact) is None
    assert await store.get_exact(copy.scope, copy.exact) is None


async def test_a_newer_entry_under_the_same_exact_key_keeps_its_pointer(store: Store) -> None:
    ns = fresh()
    older = entry(ns)
    newer = older.model_copy(update={"id": uuid.uuid4().hex, "created_at": time.time()})
    await put(store, older, newer)  # the exact pointer now names the newer one
    assert await store.invalidate(which(entry=older.id)) == 1
    assert await store.get_exact(newer.scope, newer.exact) == newer
    again = newer.model_copy(update={"id": uuid.uuid4().hex})
    assert await store.invalidate(which(entry=newer.id)) == 1
    await put(store, again)  # admitted afresh after the deletion: served again
    assert await store.get_exact(again.scope, again.exact) == again
    assert await store.count(ns) == 1


async def test_all_deletes_every_entry() -> None:
    store = MemoryStore()  # not on the shared Redis: other tests' entries live there
    await put(store, entry(fresh()), entry(fresh(), tenant="x"))
    assert await store.invalidate(which(all=True)) == 2
    assert await store.sizes() == {} or set((await store.sizes()).values()) == {0}
