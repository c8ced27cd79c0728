"""The lookup budget is a bound: a store that swallows cancellation, a slow embedding thread
and a long queue cannot hold a lookup past it; abandoned work is dropped; incidents are
logged once, as what they are. Fakes only: the in-process store, a model that sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from cache import Outcome
from cache.embedder import HashEmbedder, SentenceTransformerEmbedder
from cache.errors import StoreError
from cache.observe import Observer
from cache.schema import CacheEntry
from cache.semantic import SemanticCache
from cache.settings import CacheSettings
from cache.stores.faulty import FaultyStore
from cache.stores.memory import MemoryStore
from tests.unit.test_semantic_cache import FakeClock, body

SLACK_S = 0.03  # a loaded 2-core machine's scheduling delay, well under any stall below


class Kinds(Observer):
    """Records the failure kinds the cache reports."""

    def __init__(self) -> None:
        self.kinds: list[str] = []

    def cache_error(self, kind: str) -> None:
        self.kinds.append(kind)


class StubbornStore(MemoryStore):
    """``get_exact`` stalls ``delay_s`` and swallows its cancellation meanwhile, as redis-py
    can; then answers, or raises ``StoreError`` when ``fail``."""

    def __init__(self, delay_s: float, fail: bool = False) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.fail = fail
        self.finished = 0

    async def get_exact(self, scope: str, exact: str) -> CacheEntry | None:
        stall = asyncio.ensure_future(asyncio.sleep(self.delay_s))
        while not stall.done():
            with contextlib.suppress(asyncio.CancelledError):  # swallowed
                await asyncio.shield(stall)
        self.finished += 1
        if self.fail:
            raise StoreError("failed after the stall (simulated)")
        return await super().get_exact(scope, exact)


class CountingEmbedder(HashEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def embed(self, text: str, deadline: float | None = None) -> Any:
        self.calls += 1
        return await super().embed(text)


class SleepyModel(SentenceTransformerEmbedder):
    """The real queue and embedding thread around a fake model: ``cost_s`` per text, the
    texts that waited together run as one batch (as the default int8 model runs)."""

    def __init__(self, cost_s: float) -> None:
        super().__init__("fake", batch_window_ms=0, max_batch=32)
        self.cost_s = cost_s
        self.texts: list[str] = []

    def _load(self) -> None:
        self.dimension = 32
        self.fingerprint = "sleepy:32"
        self._model = object()

    def _encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        time.sleep(self.cost_s * len(texts))
        self.texts.extend(texts)
        vector = np.ones((len(texts), 32), dtype=np.float32)
        return vector / np.linalg.norm(vector[0])


async def open_cache(store: Any, embedder: Any, budget_ms: float) -> tuple[SemanticCache, Kinds]:
    kinds = Kinds()
    cache = SemanticCache(CacheSettings(lookup_budget_ms=budget_ms), store, embedder, kinds)
    await cache.open()
    await asyncio.sleep(0)  # the threshold refresher's first read
    return cache, kinds


async def timed_lookup(cache: SemanticCache, text: str) -> tuple[Outcome, float]:
    started = time.perf_counter()
    lookup = await cache.lookup(cache.key(body(text), "t", "default"), 0.9)
    return lookup.outcome, time.perf_counter() - started


async def test_a_store_that_swallows_cancellation_cannot_hold_a_lookup() -> None:
    store, embedder = StubbornStore(delay_s=0.3), CountingEmbedder()
    cache, kinds = await open_cache(store, embedder, budget_ms=20)
    outcome, seconds = await timed_lookup(cache, "What is six times seven?")
    assert outcome == Outcome.FAIL_OPEN and kinds.kinds == ["timeout"]
    assert seconds < 0.02 + SLACK_S
    assert cache.deadlines.abandoned == 1
    await asyncio.sleep(0.35)  # the store answers late: the abandoned lookup stops there
    assert store.finished == 1 and cache.deadlines.abandoned == 0
    assert embedder.calls == 0  # it did not go on to embed for nobody
    await cache.close()


async def test_an_abandoned_lookup_failing_later_is_retrieved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache, _ = await open_cache(StubbornStore(0.05, fail=True), HashEmbedder(), budget_ms=10)
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        assert (await timed_lookup(cache, "hello there"))[0] == Outcome.FAIL_OPEN
        await asyncio.sleep(0.1)
        gc.collect()
    assert cache.deadlines.abandoned == 0
    assert not [r for r in caplog.records if r.name == "asyncio"]  # no "never retrieved"
    await cache.close()


async def test_too_many_abandoned_lookups_are_shed_at_once() -> None:
    cache, kinds = await open_cache(StubbornStore(delay_s=0.5), HashEmbedder(), budget_ms=20)
    cache.deadlines.max_abandoned = 2
    results = [await timed_lookup(cache, f"question {i}") for i in range(4)]
    assert [outcome for outcome, _ in results] == [Outcome.FAIL_OPEN] * 4
    assert kinds.kinds == ["timeout", "timeout", "shed", "shed"]
    assert all(seconds < 0.01 for _, seconds in results[2:])  # not even tried
    await cache.close()


async def test_texts_of_abandoned_lookups_are_never_embedded() -> None:
    """Ten lookups at once behind a 20 ms model with a 50 ms budget: the model has no cost
    estimate yet, so all are queued; only those that can still make it are embedded."""
    model = SleepyModel(cost_s=0.02)
    cache, _ = await open_cache(MemoryStore(), model, budget_ms=50)
    results = await asyncio.gather(*(timed_lookup(cache, f"question {i}") for i in range(10)))
    assert max(seconds for _, seconds in results) < 0.05 + SLACK_S
    await asyncio.sleep(0.3)  # whatever was still queued would have been embedded by now
    assert len(model.texts) <= 4, model.texts
    assert model.queue is not None and model.queue.dropped >= 6
    await cache.close()


async def test_lookups_the_queue_cannot_serve_in_time_are_shed() -> None:
    model = SleepyModel(cost_s=0.02)
    cache, kinds = await open_cache(MemoryStore(), model, budget_ms=50)
    await timed_lookup(cache, "warm up")  # the model's cost is now known: ~20 ms a text
    model.texts.clear()
    started = time.perf_counter()
    results = await asyncio.gather(*(timed_lookup(cache, f"question {i}") for i in range(10)))
    outcomes = [outcome for outcome, _ in results]
    assert outcomes.count(Outcome.MISS) == 2 and outcomes.count(Outcome.FAIL_OPEN) == 8
    assert kinds.kinds == ["shed"] * 8
    assert time.perf_counter() - started < 0.05 + SLACK_S
    shed = [seconds for outcome, seconds in results if outcome == Outcome.FAIL_OPEN]
    assert max(shed) < 0.01  # refused at the door, not after waiting
    assert len(model.texts) == 2
    await cache.close()


async def test_admission_embeds_are_neither_shed_nor_dropped() -> None:
    """Texts without a deadline (admission, after the answer) wait as long as it takes, while
    lookups behind the same thread are shed."""
    model = SleepyModel(cost_s=0.02)
    cache, kinds = await open_cache(MemoryStore(), model, budget_ms=30)
    await timed_lookup(cache, "warm up")
    admissions = [model.embed(f"answer {i}") for i in range(5)]
    lookups = [timed_lookup(cache, f"question {i}") for i in range(5)]
    vectors = await asyncio.gather(*admissions, *lookups)
    assert all(isinstance(v, np.ndarray) for v in vectors[:5])
    assert {f"answer {i}" for i in range(5)} <= set(model.texts)
    assert "shed" in kinds.kinds
    await cache.close()


async def test_an_outage_during_a_timeout_incident_is_logged_as_unavailable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FaultyStore(MemoryStore())
    cache, kinds = await open_cache(store, HashEmbedder(), budget_ms=50)
    await timed_lookup(cache, "a")  # warm: numpy's first use alone can take 20 ms
    with caplog.at_level(logging.INFO, logger="vetcache.cache"):
        store.delay_s = 0.2
        await timed_lookup(cache, "a")  # over budget
        store.delay_s, store.down = 0.0, True
        for _ in range(3):
            await timed_lookup(cache, "a")  # now down
        store.delay_s, store.down = 0.2, False
        await timed_lookup(cache, "a")  # slow again: the same incident, nothing new to say
        store.delay_s = 0.0
        assert (await timed_lookup(cache, "a"))[0] == Outcome.MISS, kinds.kinds
    assert kinds.kinds == ["timeout", "store", "store", "store", "timeout"]
    assert [r.getMessage() for r in caplog.records] == [
        "cache lookup over its 50 ms budget, serving from upstream",
        "cache unavailable, serving from upstream: StoreError (it was over its budget before)",
    ]  # and no "recovered" yet: one good lookup right after failures closes nothing
    await cache.close()


async def test_sporadic_timeouts_between_good_lookups_are_one_incident(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A loaded cache: a lookup over budget now and then between good ones."""
    store = FaultyStore(MemoryStore())
    cache, _ = await open_cache(store, HashEmbedder(), budget_ms=50)
    await timed_lookup(cache, "a")
    with caplog.at_level(logging.INFO, logger="vetcache.cache"):
        for _ in range(10):
            store.delay_s = 0.08
            assert (await timed_lookup(cache, "a"))[0] == Outcome.FAIL_OPEN
            store.delay_s = 0.0
            assert (await timed_lookup(cache, "a"))[0] == Outcome.MISS
    assert [r.getMessage() for r in caplog.records] == [
        "cache lookup over its 50 ms budget, serving from upstream"
    ]
    await cache.close()


async def test_an_incident_closes_after_a_quiet_period_with_its_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FaultyStore(MemoryStore())
    cache, _ = await open_cache(store, HashEmbedder(), budget_ms=50)
    clock = FakeClock()
    cache.incidents.clock = clock
    await timed_lookup(cache, "a")
    with caplog.at_level(logging.INFO, logger="vetcache.cache"):
        store.delay_s = 0.08
        await timed_lookup(cache, "a")
        clock.now += 2.0
        store.delay_s, store.down = 0.0, True
        await timed_lookup(cache, "a")
        store.down = False
        await timed_lookup(cache, "a")
        clock.now += cache.incidents.quiet_s
        await timed_lookup(cache, "a")
    assert [r.getMessage() for r in caplog.records][-1] == (
        "cache recovered after 2.0 s: 2 failures (store 1, timeout 1)"
    )
    await cache.close()
