"""Per-request freshness and entry life on fakes (the in-process store, a hash embedder, a
clock the test moves): ``Cache-Control: max-age`` in the lookup, the admitted TTL and its
bound, the sliding TTL, and eviction at the cap by the least recently served."""

from __future__ import annotations

import time
from typing import Any

import pytest

from cache import Outcome, admission, semantic
from cache.embedder import HashEmbedder
from cache.schema import CacheKey, Refusal
from cache.semantic import SemanticCache
from cache.settings import CacheSettings
from cache.stores import memory
from cache.stores.memory import MemoryStore
from tests.unit.test_semantic_cache import ANSWER, body


class Clock:
    """Stands in for the ``time`` module where the cache reads the wall clock."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.perf_counter = time.perf_counter

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    for module in (admission, semantic, memory):
        monkeypatch.setattr(module, "time", fake)
    return fake


async def open_cache(**overrides: Any) -> SemanticCache:
    cache = SemanticCache(CacheSettings(**overrides), MemoryStore(), HashEmbedder())
    await cache.open()
    return cache


def key(cache: SemanticCache, text: str = "What is six times seven?") -> CacheKey:
    return cache.key(body(text), "t", "default")


async def test_max_age_serves_only_younger_entries(clock: Clock) -> None:
    cache = await open_cache()
    await cache.admit(key(cache), None, ANSWER)
    clock.now += 100
    young = await cache.lookup(key(cache), 0.9, max_age_s=100)
    assert young.outcome == Outcome.HIT and young.hit is not None and young.hit.exact
    old = await cache.lookup(key(cache), 0.9, max_age_s=99)
    assert old.outcome == Outcome.MISS and old.refused == Refusal.STALE
    assert old.candidate is not None and old.vector is not None  # searched past the exact layer
    # A paraphrase finds the same entry by similarity: as stale there.
    near = await cache.lookup(key(cache, "Something else entirely"), -1.0, max_age_s=99)
    assert near.outcome == Outcome.MISS and near.refused == Refusal.STALE
    assert (await cache.lookup(key(cache, "Something else entirely"), -1.0)).hit is not None


async def test_a_stale_exact_repeat_does_not_hide_a_younger_paraphrase(clock: Clock) -> None:
    cache = await open_cache()
    await cache.admit(key(cache), None, ANSWER)
    clock.now += 100
    younger = {**ANSWER, "id": "younger"}
    await cache.admit(key(cache, "Six times seven is what?"), None, younger)
    found = await cache.lookup(key(cache), -1.0, max_age_s=50)
    assert found.outcome == Outcome.HIT and found.hit is not None
    assert not found.hit.exact and '"younger"' in found.hit.entry.response
    assert [p.reason for p in found.passed_over] == [Refusal.STALE]


async def test_the_admitted_ttl_is_the_requests_within_the_bound(clock: Clock) -> None:
    cache = await open_cache(ttl_s=3600)
    assert (await cache.admit(key(cache), None, ANSWER)).ttl_s == 3600  # type: ignore[union-attr]
    short = await cache.admit(key(cache, "a"), None, ANSWER, ttl_s=60)
    assert short is not None and short.ttl_s == 60
    long = await cache.admit(key(cache, "b"), None, ANSWER, ttl_s=10**9)
    assert long is not None and long.ttl_s == 3600  # only shorter than ttl_s, by default
    clock.now += 61
    assert (await cache.lookup(key(cache, "a"), 0.99)).outcome == Outcome.MISS
    assert (await cache.lookup(key(cache), 0.99)).outcome == Outcome.HIT
    bounded = await open_cache(ttl_s=3600, max_ttl_s=7200)
    longer = await bounded.admit(key(bounded), None, ANSWER, ttl_s=10**9)
    assert longer is not None and longer.ttl_s == 7200


@pytest.mark.parametrize("sliding", [True, False])
async def test_a_hit_extends_the_entry_only_under_sliding_ttl(clock: Clock, sliding: bool) -> None:
    cache = await open_cache(ttl_s=100, sliding_ttl=sliding)
    await cache.admit(key(cache), None, ANSWER, ttl_s=50)
    clock.now += 40
    hit = (await cache.lookup(key(cache), 0.99)).hit
    assert hit is not None
    await cache.served(hit.entry)  # the after-work of a hit
    clock.now += 40  # 80 s after admission: past its own 50 s, not past 40 + 50
    again = await cache.lookup(key(cache), 0.99)
    assert again.outcome == (Outcome.HIT if sliding else Outcome.MISS)
    clock.now += 51  # the slide gives its own TTL again, not ``ttl_s``
    assert (await cache.lookup(key(cache), 0.99)).outcome == Outcome.MISS


@pytest.mark.parametrize("sliding", [True, False])
async def test_eviction_at_the_cap_takes_the_least_recently_served(
    clock: Clock, sliding: bool
) -> None:
    cache = await open_cache(max_entries_per_namespace=2, sliding_ttl=sliding)
    await cache.admit(key(cache, "first"), None, ANSWER)
    clock.now += 1
    await cache.admit(key(cache, "second"), None, ANSWER)
    clock.now += 1
    hit = (await cache.lookup(key(cache, "first"), 0.99)).hit
    assert hit is not None
    await cache.served(hit.entry)
    clock.now += 1
    await cache.admit(key(cache, "third"), None, ANSWER)
    kept = {
        text
        for text in ("first", "second", "third")
        if (await cache.lookup(key(cache, text), 0.99)).hit is not None
    }
    # Without the slide a hit changes nothing: the oldest goes (docs/cache.md says why).
    assert kept == ({"first", "third"} if sliding else {"second", "third"})
