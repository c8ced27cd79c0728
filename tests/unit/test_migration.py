"""Migration between embedding versions on the in-process store (``cache.migration``)."""

from __future__ import annotations

import pytest

from cache.errors import EmbedderError
from cache.keys import versioned_key
from cache.migration import Migrator, TokenBucket
from cache.neighbourhood import Label
from cache.schema import CacheEntry
from cache.stores.memory import MemoryStore
from cache.versions import copy_of
from tests.migration_fakes import VersionEmbedder, fill

OLD, NEW = VersionEmbedder("a"), VersionEmbedder("b")


def migrator(store: MemoryStore, **options: object) -> Migrator:
    return Migrator(store, OLD, NEW, rate_per_s=None, **options)  # type: ignore[arg-type]


async def copies(store: MemoryStore, namespace: str) -> list[CacheEntry]:
    found: list[CacheEntry] = []
    cursor = ""
    while True:
        page, cursor = await store.live_entries(namespace, NEW.fingerprint, cursor, 7)
        found.extend(entry for entry, _ in page)
        if not cursor:
            return found


async def test_each_live_entry_is_copied_into_the_target_scope() -> None:
    store = MemoryStore()
    entries = await fill(store, OLD, "ns", 10, tenants=("t1", "t2"))
    progress = await migrator(store, batch=4).run("ns")
    assert (progress.done, progress.copied, progress.skipped, progress.failed) == (True, 10, 0, 0)
    assert await store.migration("ns", NEW.fingerprint) == progress
    for entry in entries:
        target_scope = versioned_key(entry.base, entry.prompt, NEW.fingerprint)[0]
        nearest = await store.search(target_scope, await NEW.embed(entry.text), k=20)
        copy, similarity = nearest[0]
        assert (copy.id, copy.origin) == (copy_of(entry, NEW.fingerprint).id, entry.id)
        assert (copy.response, copy.text) == (entry.response, entry.text)  # answer reused
        assert similarity == pytest.approx(1.0, abs=1e-5)  # the prompt re-embedded by NEW
        # Every entry of a scope is of the scope's version: the source's scope is untouched.
        assert {e.embedder for e, _ in nearest} == {NEW.fingerprint}
        old = await store.search(entry.scope, await OLD.embed(entry.text), k=20)
        assert {e.embedder for e, _ in old} == {OLD.fingerprint}
        assert old[0][0] == entry
    assert await store.count("ns") == 10  # copies are not counted before cutover


async def test_a_stopped_migration_resumes_where_it_stopped() -> None:
    store = MemoryStore()
    await fill(store, OLD, "ns", 10)
    first = await migrator(store, batch=2).run("ns", stop_after=3)
    assert not first.done
    assert first.copied == 4  # stops after the batch that reached 3
    before = NEW.embedded
    final = await migrator(store, batch=2).run("ns")
    assert final.done and final.copied == 10
    assert NEW.embedded - before == 6  # only the rest was re-embedded
    assert final.started_at == first.started_at
    origins = [e.origin for e in await copies(store, "ns")]
    assert len(origins) == len(set(origins)) == 10


async def test_a_rerun_after_a_kill_copies_nothing_twice() -> None:
    store = MemoryStore()
    await fill(store, OLD, "ns", 9)
    done = await migrator(store, batch=4).run("ns")
    # A run killed before it saved its last batches: the saved cursor is behind the copies.
    await store.set_migration(done.model_copy(update={"cursor": "", "copied": 0, "done": False}))
    again = await migrator(store, batch=4).run("ns")
    assert again.done and again.copied == 0
    assert len(await copies(store, "ns")) == 9


async def test_entries_admitted_before_versions_are_skipped_and_counted() -> None:
    store = MemoryStore()
    entries = await fill(store, OLD, "ns", 6)
    for legacy in entries[:2]:
        await store.put(legacy.model_copy(update={"id": legacy.id + "L", "base": "", "prompt": ""}),
                        await OLD.embed(legacy.text), 600, None)  # fmt: skip
    progress = await migrator(store).run("ns")
    assert (progress.copied, progress.skipped) == (6, 2)


async def test_guards_are_copied_and_labels_are_not() -> None:
    store = MemoryStore()
    entry, plain = await fill(store, OLD, "ns", 2)
    await store.guard(entry.scope, entry.id, min_similarity=0.97, quarantine=True)
    await store.add_label(entry.scope, entry.id, Label(id="l", correct=False, similarity=0.9))
    await migrator(store).run("ns")
    by_origin = {e.origin: e for e in await copies(store, "ns")}
    copy = by_origin[entry.id]
    assert (copy.min_similarity, copy.quarantined, copy.labelled) == (0.97, True, False)
    assert await store.labels(copy.scope, copy.id) == []
    assert by_origin[plain.id].min_similarity is None
    assert not by_origin[plain.id].quarantined


async def test_a_copy_expires_with_its_entry() -> None:
    store = MemoryStore()
    await fill(store, OLD, "ns", 3, ttl_s=100)
    await migrator(store).run("ns")
    old, _ = await store.live_entries("ns", OLD.fingerprint, "", 10)
    new, _ = await store.live_entries("ns", NEW.fingerprint, "", 10)
    expiry = {e.id: at for e, at in old}
    assert sorted(at for _, at in new) == sorted(expiry.values())
    assert all(at == expiry[e.origin] for e, at in new)


async def test_a_prompt_the_target_cannot_embed_is_counted_and_passed() -> None:
    store = MemoryStore()
    await fill(store, OLD, "ns", 5)
    failing = VersionEmbedder("b", fails_on="number 3 ")
    progress = await Migrator(store, OLD, failing, rate_per_s=None).run("ns")
    assert (progress.done, progress.copied, progress.failed) == (True, 4, 1)


async def test_an_embedder_that_is_down_stops_the_migration() -> None:
    store = MemoryStore()
    await fill(store, OLD, "ns", 5)
    down = VersionEmbedder("b", fails_on="task")
    with pytest.raises(EmbedderError):
        await Migrator(store, OLD, down, rate_per_s=None).run("ns")
    assert await store.migration("ns", down.fingerprint) is None  # nothing claimed done


def test_migrating_a_version_to_itself_is_refused() -> None:
    with pytest.raises(ValueError, match="same embedding version"):
        Migrator(MemoryStore(), OLD, VersionEmbedder("a"))


async def test_the_token_bucket_paces_entries_per_second() -> None:
    clock = [0.0]

    async def sleep(seconds: float) -> None:
        clock[0] += seconds

    bucket = TokenBucket(50.0, 8, clock=lambda: clock[0], sleep=sleep)
    for _ in range(25):
        await bucket.take(8)
    # 200 entries at 50/s with a burst of 8 saved up: (200 - 8) / 50 s.
    assert clock[0] == pytest.approx(192 / 50)
    unlimited = TokenBucket(None, 8, clock=lambda: clock[0], sleep=sleep)
    await unlimited.take(10_000)
    assert clock[0] == pytest.approx(192 / 50)


async def test_the_shadow_comparison_restarts_once_when_the_migration_finishes() -> None:
    store = MemoryStore()
    await fill(store, OLD, "ns", 6)
    await store.shadow_count("ns", NEW.fingerprint, {"all": "all"}, {"lookups": 3})
    first = await migrator(store, batch=2).run("ns", stop_after=2)
    assert not first.done
    assert await store.shadow_counts("ns", NEW.fingerprint) != {}  # mid-way: kept
    assert (await migrator(store, batch=2).run("ns")).done
    assert await store.shadow_counts("ns", NEW.fingerprint) == {}
    await store.shadow_count("ns", NEW.fingerprint, {"all": "all"}, {"lookups": 1})
    await migrator(store).run("ns")  # already done: the new comparison stands
    assert await store.shadow_counts("ns", NEW.fingerprint) == {"all=all": {"lookups": 1}}
