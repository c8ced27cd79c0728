"""SemanticCache on fakes: the in-process store, a hash embedder, a store that fails."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cache import Outcome
from cache.embedder import HashEmbedder
from cache.errors import EmbedderError
from cache.keys import hidden_character
from cache.semantic import SemanticCache
from cache.settings import CacheSettings
from cache.stores.faulty import FaultyStore
from cache.stores.memory import MemoryStore

ANSWER: dict[str, Any] = {
    "id": "c1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "42"}, "finish_reason": "stop"}
    ],
}


class FakeClock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def body(text: str = "What is six times seven?", **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}], **extra}


async def open_cache(**overrides: Any) -> tuple[SemanticCache, FaultyStore]:
    store = FaultyStore(MemoryStore())
    cache = SemanticCache(CacheSettings(**overrides), store, HashEmbedder())
    await cache.open()
    await asyncio.sleep(0)  # the threshold refresher's first read, before a test breaks the store
    return cache, store


async def test_miss_admit_then_exact_hit() -> None:
    cache, _ = await open_cache()
    key = cache.key(body(), "t", "default")
    first = await cache.lookup(key, 0.9)
    assert first.outcome == Outcome.MISS and first.vector is not None
    await cache.admit(key, first.vector, ANSWER)
    again = await cache.lookup(cache.key(body(), "t", "default"), 0.9)
    assert again.outcome == Outcome.HIT and again.hit is not None
    assert again.hit.exact and again.hit.similarity == 1.0
    # Other whitespace is another prompt to a model: not an exact repeat (maybe a near one).
    spaced = await cache.lookup(
        cache.key(body("  What is six   times seven? "), "t", "default"), 0.9
    )
    assert spaced.candidate is not None and not spaced.candidate.exact


async def test_semantic_hit_needs_the_threshold() -> None:
    cache, _ = await open_cache()
    key = cache.key(body(), "t", "default")
    await cache.admit(key, None, ANSWER)
    other = cache.key(body("Something else entirely"), "t", "default")
    low = await cache.lookup(other, -1.0)  # any vector clears -1: the entry is found
    assert low.outcome == Outcome.HIT and low.hit is not None and not low.hit.exact
    strict = await cache.lookup(other, 0.99)
    assert strict.outcome == Outcome.MISS
    assert strict.best_similarity == pytest.approx(low.hit.similarity)


def test_threshold_may_only_tighten_without_admin() -> None:
    cache = SemanticCache(
        CacheSettings(threshold=0.9, namespace_thresholds={"strict": 0.95}),
        MemoryStore(),
        HashEmbedder(),
    )
    assert cache.threshold("default", None, False) == 0.9
    assert cache.threshold("strict", None, False) == 0.95
    assert cache.threshold("default", 0.97, False) == 0.97
    assert cache.threshold("default", 0.5, False) == 0.9
    assert cache.threshold("default", 0.5, True) == 0.5


@pytest.mark.parametrize(
    ("completion", "extra", "ok"),
    [
        (ANSWER, {}, True),
        ({**ANSWER, "choices": [{**ANSWER["choices"][0], "finish_reason": "length"}]}, {}, False),
        ({**ANSWER, "choices": ANSWER["choices"] * 2}, {"n": 2}, False),
        (
            {
                **ANSWER,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "tool_calls": [{"id": "x"}]},
                        "finish_reason": "tool_calls",
                    }
                ],
            },
            {},
            False,
        ),
        (ANSWER, {"temperature": 1.5}, False),
        (ANSWER, {"temperature": 0.2}, True),
    ],
)
def test_admission_rules(completion: dict[str, Any], extra: dict[str, Any], ok: bool) -> None:
    cache = SemanticCache(CacheSettings(max_temperature=1.0), MemoryStore(), HashEmbedder())
    assert cache.admissible(body(**extra), completion) is ok


async def test_store_down_fails_open_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    cache, store = await open_cache()
    clock = FakeClock()
    cache.incidents.clock = clock
    key = cache.key(body(), "t", "default")
    await cache.admit(key, None, ANSWER)
    store.down = True
    with caplog.at_level(logging.INFO, logger="vetcache.cache"):
        for _ in range(3):
            assert (await cache.lookup(key, 0.9)).outcome == Outcome.FAIL_OPEN
        await cache.admit(key, None, ANSWER)  # swallowed, counted
        store.down = False
        assert (await cache.lookup(key, 0.9)).outcome == Outcome.HIT
        clock.now += cache.incidents.quiet_s  # recovered: it worked for a while
        assert (await cache.lookup(key, 0.9)).outcome == Outcome.HIT
    assert cache.errors == 4
    messages = [r.getMessage() for r in caplog.records]
    assert sum("cache unavailable" in m for m in messages) == 1  # once per incident
    assert [m for m in messages if "cache recovered" in m] == [
        "cache recovered after 0.0 s: 4 failures (store 4)"
    ]


async def test_slow_store_is_abandoned_within_the_budget(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache, store = await open_cache(lookup_budget_ms=20)
    store.delay_s = 1.0
    lookup = await cache.lookup(cache.key(body(), "t", "default"), 0.9)
    assert lookup.outcome == Outcome.FAIL_OPEN
    # Said as slow, not as down: the remedy differs.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "cache lookup over its 20 ms budget, serving from upstream"
    ]


async def test_store_down_at_start_is_retried_later() -> None:
    store = FaultyStore(MemoryStore())
    store.down = True
    cache = SemanticCache(CacheSettings(), store, HashEmbedder())
    await cache.open()  # does not raise: the gateway starts without its cache
    key = cache.key(body(), "t", "default")
    assert (await cache.lookup(key, 0.9)).outcome == Outcome.FAIL_OPEN
    store.down = False
    assert (await cache.lookup(key, 0.9)).outcome == Outcome.MISS


scopes = st.fixed_dictionaries(
    {
        "tenant": st.sampled_from(["acme", "globex", "initech"]),
        "model": st.sampled_from(["gpt-a", "gpt-b"]),
        "system": st.sampled_from([None, "Be brief.", "You are a pirate."]),
        "tools": st.sampled_from([None, [{"type": "function", "function": {"name": "search"}}]]),
    }
)


def scoped_body(scope: dict[str, Any], text: str) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": text}]
    if scope["system"]:
        messages.insert(0, {"role": "system", "content": scope["system"]})
    result: dict[str, Any] = {"model": scope["model"], "messages": messages}
    if scope["tools"]:
        result["tools"] = scope["tools"]
    return result


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    writer=scopes,
    reader=scopes,
    text=st.text(min_size=1, max_size=40).filter(lambda t: t.strip() and not hidden_character(t)),
)
async def test_no_hit_ever_crosses_a_scope(
    writer: dict[str, Any], reader: dict[str, Any], text: str
) -> None:
    cache, _ = await open_cache()
    written = cache.key(scoped_body(writer, text), writer["tenant"], "default")
    await cache.admit(written, None, ANSWER)
    read = cache.key(scoped_body(reader, text), reader["tenant"], "default")
    lookup = await cache.lookup(read, -1.0)  # the loosest threshold there is
    if writer == reader:
        assert lookup.outcome == Outcome.HIT
    else:
        assert lookup.outcome == Outcome.MISS, (writer, reader)


class BrokenEmbedder(HashEmbedder):
    """An embedder whose model fails on every input."""

    async def embed(self, text: str, deadline: float | None = None) -> Any:
        raise EmbedderError("model crashed (simulated)")


async def test_embedder_failure_fails_open() -> None:
    cache = SemanticCache(CacheSettings(), MemoryStore(), BrokenEmbedder())
    await cache.open()
    key = cache.key(body(), "t", "default")
    assert (await cache.lookup(key, 0.9)).outcome == Outcome.FAIL_OPEN
    await cache.admit(key, None, ANSWER)  # nothing to store without a vector; no raise
    assert cache.errors == 2
