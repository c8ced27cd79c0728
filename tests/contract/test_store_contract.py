"""One contract, every store: in-process, Redis with the Query Engine, and a Redis Cluster."""

from __future__ import annotations

import asyncio
import time
import uuid

import numpy as np
import pytest

from cache.neighbourhood import LABELS_KEPT, Label, pack
from cache.schema import CacheEntry
from cache.stores.base import Store
from tests.contract.conftest import DIM


def unit(*values: float) -> np.ndarray:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[: len(values)] = values
    return vector / np.linalg.norm(vector)


def entry(scope: str, namespace: str, text: str = "q", exact: str | None = None) -> CacheEntry:
    return CacheEntry(
        id=uuid.uuid4().hex,
        scope=scope,
        exact=exact or uuid.uuid4().hex,
        namespace=namespace,
        tenant="t",
        model="m",
        text=text,
        response='{"answer": "' + text + '"}',
        embedder="e",
        base=scope,
        prompt=exact or "p",
        created_at=time.time(),
    )


def fresh() -> str:
    return uuid.uuid4().hex  # a scope or namespace no other test uses


async def test_exact_layer_finds_only_its_scope(store: Store) -> None:
    scope, ns = fresh(), fresh()
    stored = entry(scope, ns, exact="x1")
    await store.put(stored, unit(1), ttl_s=60, cap=None)
    assert await store.get_exact(scope, "x1") == stored
    assert await store.get_exact(fresh(), "x1") is None
    assert await store.get_exact(scope, "x2") is None


async def test_search_is_fenced_by_scope_and_ordered(store: Store) -> None:
    scope, other, ns = fresh(), fresh(), fresh()
    near, far = entry(scope, ns, "near"), entry(scope, ns, "far")
    intruder = entry(other, ns, "intruder")
    await store.put(near, unit(1, 0.1), ttl_s=60, cap=None)
    await store.put(far, unit(0.2, 1), ttl_s=60, cap=None)
    await store.put(intruder, unit(1, 0), ttl_s=60, cap=None)  # nearest of all, wrong scope
    found = await store.search(scope, unit(1, 0), k=2)
    assert [e.text for e, _ in found] == ["near", "far"]
    similarity = found[0][1]
    assert similarity == pytest.approx(float(unit(1, 0.1) @ unit(1, 0)), abs=1e-4)
    assert found[0][1] > found[1][1]
    assert await store.search(fresh(), unit(1), k=1) == []


async def test_entries_expire(store: Store) -> None:
    scope, ns = fresh(), fresh()
    gone = entry(scope, ns, exact="gone")
    await store.put(gone, unit(1), ttl_s=1, cap=None)
    assert await store.add_label(scope, gone.id, Label(id="l", correct=False, similarity=0.9))
    assert await store.count(ns) == 1
    await asyncio.sleep(2.1)  # bounded wait past the TTL; asserts expiry, not timing
    assert await store.get_exact(scope, "gone") is None
    assert await store.labels(scope, gone.id) == []  # the labels expire with it
    assert await store.search(scope, unit(1), k=1) == []
    assert await store.count(ns) == 0


async def test_namespace_cap_evicts_the_oldest(store: Store) -> None:
    scope, ns = fresh(), fresh()
    stored = []
    for i in range(5):
        item = entry(scope, ns, f"e{i}", exact=f"x{i}")
        item = item.model_copy(update={"created_at": time.time() + i * 0.001})
        stored.append(item)
        await store.put(item, unit(1, i), ttl_s=60, cap=3)
        await store.add_label(scope, item.id, Label(id="l", correct=True, similarity=0.9))
    assert await store.count(ns) == 3
    assert await store.get_exact(scope, "x0") is None
    assert await store.labels(scope, stored[0].id) == []  # evicted with its entry
    assert await store.get_exact(scope, "x1") is None
    assert await store.get_exact(scope, "x4") == stored[4]
    texts = {e.text for e, _ in await store.search(scope, unit(1), k=10)}
    assert texts == {"e2", "e3", "e4"}


async def test_touch_makes_eviction_least_recently_served(store: Store) -> None:
    scope, ns = fresh(), fresh()
    stored = []
    for i in range(3):
        item = entry(scope, ns, f"e{i}", exact=f"x{i}")
        item = item.model_copy(update={"created_at": time.time() - 10 + i})
        stored.append(item)
        await store.put(item, unit(1, i), ttl_s=60, cap=3)
    assert await store.touch(stored[0], 60)  # served now: lives 60 s from now, the longest
    await store.put(entry(scope, ns, "e3", exact="x3"), unit(1, 3), ttl_s=60, cap=3)
    assert await store.get_exact(scope, "x0") == stored[0]
    assert await store.get_exact(scope, "x1") is None  # now the least recently served
    assert await store.count(ns) == 3


async def test_touch_extends_an_entry_and_never_shortens_it(store: Store) -> None:
    scope, ns = fresh(), fresh()
    short, long = entry(scope, ns, "short", exact="xs"), entry(scope, ns, "long", exact="xl")
    await store.put(short, unit(1), ttl_s=1, cap=None)
    await store.put(long, unit(0, 1), ttl_s=60, cap=None)
    assert await store.add_label(scope, short.id, Label(id="l", correct=False, similarity=0.9))
    assert await store.touch(short, 5)
    assert await store.touch(long, 1)
    await asyncio.sleep(1.5)  # bounded wait past the first TTL; asserts expiry, not timing
    assert await store.get_exact(scope, "xs") == short.model_copy(update={"labelled": True})
    assert [label.id for label in await store.labels(scope, short.id)] == ["l"]
    assert await store.get_exact(scope, "xl") == long
    assert {e.text for e, _ in await store.search(scope, unit(1), k=5)} == {"short", "long"}
    assert await store.count(ns) == 2


async def test_touch_of_a_gone_entry_counts_nothing(store: Store) -> None:
    scope, ns = fresh(), fresh()
    first, second = entry(scope, ns, "a", exact="xa"), entry(scope, ns, "b", exact="xb")
    await store.put(first, unit(1), ttl_s=60, cap=1)
    await store.put(second, unit(0, 1), ttl_s=60, cap=1)  # evicts the first
    assert not await store.touch(first, 60)
    assert not await store.touch(entry(scope, ns, "never"), 60)
    assert await store.count(ns) == 1


async def test_namespaces_count_separately(store: Store) -> None:
    scope, ns_a, ns_b = fresh(), fresh(), fresh()
    await store.put(entry(scope, ns_a), unit(1), ttl_s=60, cap=1)
    await store.put(entry(scope, ns_b), unit(1), ttl_s=60, cap=1)
    assert (await store.count(ns_a), await store.count(ns_b)) == (1, 1)


async def test_tenants_count_separately_under_one_namespace_cap(store: Store) -> None:
    """Tenant b filling a shared namespace past the cap evicts b's own oldest entries, never
    tenant a's (issue 17: b's 40 prompts had evicted all of a's); sizes sum the tenants."""
    ns, scope_a, scope_b = fresh(), fresh(), fresh()
    mine = entry(scope_a, ns, "a's", exact="xa").model_copy(update={"tenant": "a"})
    await store.put(mine, unit(1), ttl_s=60, cap=3)
    for i in range(6):
        theirs = entry(scope_b, ns, f"b{i}", exact=f"xb{i}")
        theirs = theirs.model_copy(update={"tenant": "b", "created_at": time.time() + i * 1e-3})
        await store.put(theirs, unit(1, i), ttl_s=60, cap=3)
    assert await store.get_exact(scope_a, "xa") == mine
    assert await store.get_exact(scope_b, "xb0") is None  # b's oldest went
    assert (await store.count(ns, "a"), await store.count(ns, "b")) == (1, 3)
    assert await store.count(ns) == 4
    assert (await store.sizes(limit=100_000))[ns] == 4


async def test_sizes_lists_live_entries_per_namespace(store: Store) -> None:
    scope, ns_a, ns_b = fresh(), fresh(), fresh()
    for _ in range(3):
        await store.put(entry(scope, ns_a), unit(1), ttl_s=60, cap=None)
    await store.put(entry(scope, ns_b), unit(1), ttl_s=1, cap=None)
    await asyncio.sleep(1.1)  # the ns_b entry has expired
    sizes = await store.sizes(limit=100_000)
    assert sizes[ns_a] == 3 and sizes.get(ns_b, 0) == 0


async def test_live_thresholds_round_trip(store: Store) -> None:
    ns = fresh()
    await store.set_threshold(ns, 0.93)
    assert (await store.thresholds())[ns] == 0.93
    await store.set_threshold(ns, None)
    assert ns not in await store.thresholds()


async def test_guard_raises_the_bar_and_quarantines(store: Store) -> None:
    scope, ns = fresh(), fresh()
    stored = entry(scope, ns, exact="g1")
    await store.put(stored, unit(1), ttl_s=60, cap=None)
    assert await store.guard(scope, stored.id, min_similarity=0.97)
    assert await store.guard(scope, stored.id, min_similarity=0.93)  # never lowers
    guarded = await store.get_exact(scope, "g1")
    assert guarded is not None and guarded.min_similarity == pytest.approx(0.97)
    assert not guarded.quarantined
    assert await store.guard(scope, stored.id, quarantine=True)
    found = await store.search(scope, unit(1), k=1)
    assert found[0][0].quarantined and found[0][0].min_similarity == pytest.approx(0.97)
    assert not await store.guard(scope, "no-such-entry", quarantine=True)


async def test_restore_sets_the_guard_exactly_lowering_and_lifting_it(store: Store) -> None:
    scope, ns = fresh(), fresh()
    stored = entry(scope, ns, exact="r1")
    await store.put(stored, unit(1), ttl_s=60, cap=None)
    await store.guard(scope, stored.id, min_similarity=0.99, quarantine=True)
    assert await store.restore(scope, stored.id, min_similarity=0.95, quarantined=False)
    [(found, _)] = await store.search(scope, unit(1), k=1)
    assert found.min_similarity == pytest.approx(0.95) and not found.quarantined
    assert await store.restore(scope, stored.id, min_similarity=None, quarantined=True)
    restored = await store.get_exact(scope, "r1")
    assert restored is not None and restored.min_similarity is None and restored.quarantined
    assert not await store.restore(scope, "no-such-entry", min_similarity=None, quarantined=False)


async def test_labels_flag_the_entry_are_bounded_and_replaced_by_id(store: Store) -> None:
    scope = fresh()
    stored = entry(scope, fresh(), exact="l1")
    await store.put(stored, unit(1), ttl_s=60, cap=None)
    correct = Label(id="c", correct=True, similarity=0.95, vector=pack(unit(1, 1)), created_at=1)
    assert await store.add_label(scope, stored.id, correct)
    found = await store.get_exact(scope, "l1")
    assert found is not None and not found.labelled  # correct labels alone change nothing
    false = Label(id="f", correct=False, similarity=0.951, vector=pack(unit(1, 0, 1)), created_at=2)
    assert await store.add_label(scope, stored.id, false)
    [(searched, _)] = await store.search(scope, unit(1))
    flagged = await store.get_exact(scope, "l1")
    assert searched.labelled and flagged is not None and flagged.labelled
    assert sorted(await store.labels(scope, stored.id), key=lambda x: x.id) == [correct, false]
    for n in range(LABELS_KEPT):  # over the bound: the oldest correct one goes first
        more = Label(id=f"n{n}", correct=True, similarity=0.9, created_at=3 + n)
        assert await store.add_label(scope, stored.id, more)
    ids = {x.id for x in await store.labels(scope, stored.id)}
    assert len(ids) == LABELS_KEPT and "f" in ids and not {"c", "n0"} & ids
    overturned = false.model_copy(update={"correct": True})
    assert await store.add_label(scope, stored.id, overturned)  # same id: replaced
    assert overturned in await store.labels(scope, stored.id)
    assert not await store.add_label(scope, "no-such-entry", false)
    assert await store.labels(scope, "no-such-entry") == []


async def test_search_returns_the_entry_id_it_was_admitted_with(store: Store) -> None:
    scope, ns = fresh(), fresh()
    stored = entry(scope, ns)
    await store.put(stored, unit(1), ttl_s=60, cap=None)
    [(found, _)] = await store.search(scope, unit(1), k=1)
    assert found.model_dump(exclude={"created_at"}) == stored.model_dump(exclude={"created_at"})
    assert found.created_at == pytest.approx(stored.created_at, abs=1e-3)


def pending(scope: str, namespace: str, text: str = "q", exact: str | None = None) -> CacheEntry:
    return entry(scope, namespace, text, exact).model_copy(update={"pending": True})


async def test_a_pending_entry_is_found_by_its_exact_key_only(store: Store) -> None:
    scope, ns = fresh(), fresh()
    held = pending(scope, ns, exact="x1")
    await store.put(held, unit(1), ttl_s=60, cap=None)
    assert await store.get_exact(scope, "x1") == held  # pending=True: the caller won't serve it
    assert await store.search(scope, unit(1), k=3) == []
    assert await store.count(ns) == 1  # it takes room like any entry


async def test_confirm_releases_after_enough_distinct_askers(store: Store) -> None:
    scope, ns = fresh(), fresh()
    held = pending(scope, ns, exact="x1")
    await store.put(held, unit(1), ttl_s=60, cap=None)
    assert not await store.confirm(scope, held.id, "key-a", needed=3)
    assert not await store.confirm(scope, held.id, "key-a", needed=3)  # the same asker again
    assert not await store.confirm(scope, held.id, "key-b", needed=3)
    assert await store.search(scope, unit(1), k=1) == []
    assert await store.confirm(scope, held.id, "key-c", needed=3)
    released = held.model_copy(update={"pending": False})
    assert [e for e, _ in await store.search(scope, unit(1), k=1)] == [released]
    assert await store.get_exact(scope, "x1") == released
    assert await store.confirm(scope, held.id, "key-d", needed=3)  # servable stays servable
    assert await store.count(ns) == 1
    assert not await store.confirm(scope, "no-such-entry", "key-a", needed=1)


async def test_release_and_discard(store: Store) -> None:
    scope, ns = fresh(), fresh()
    passed, failed = pending(scope, ns, "passed", "x1"), pending(scope, ns, "failed", "x2")
    await store.put(passed, unit(1), ttl_s=60, cap=None)
    await store.put(failed, unit(1, 0.1), ttl_s=60, cap=None)
    assert await store.release(scope, passed.id)
    assert await store.release(scope, passed.id)  # idempotent: a redelivered verdict
    await store.discard(scope, failed.id)
    assert await store.get_exact(scope, "x2") is None  # the next identical request admits anew
    assert not await store.release(scope, failed.id)
    assert [e.text for e, _ in await store.search(scope, unit(1), k=3)] == ["passed"]
    await store.discard(scope, passed.id)  # a released entry is not discarded
    assert [e.text for e, _ in await store.search(scope, unit(1), k=3)] == ["passed"]
    assert await store.count(ns) == 1


async def test_a_released_entry_counts_against_the_cap(store: Store) -> None:
    scope, ns = fresh(), fresh()
    held = pending(scope, ns, exact="x1")
    await store.put(held, unit(1), ttl_s=1, cap=None)
    assert await store.release(scope, held.id)
    newer = entry(scope, ns, "newer")
    await store.put(newer, unit(0, 1), ttl_s=60, cap=1)  # the released one is the oldest
    assert [e.text for e, _ in await store.search(scope, unit(1), k=3)] == ["newer"]
    assert await store.count(ns) == 1
