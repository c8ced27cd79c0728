"""The serving policy: served, would-serve (shadow) or refused with a reason, in one place;
on fakes (a hash embedder, the in-process store)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from cache import CacheEntry, CacheKey, Candidate, Check, Outcome, Refusal, ServingPolicy
from cache.contrast import ContrastCheck
from cache.embedder import HashEmbedder
from cache.semantic import SemanticCache
from cache.settings import CacheSettings
from cache.stores.memory import MemoryStore

EMBEDDER = HashEmbedder()
KEY = CacheKey(base="b", prompt="p", embedder=EMBEDDER.fingerprint, scope="s", exact="x2", text="Don't cancel my order", tenant="t", namespace="shop",
               model="m")  # fmt: skip


def candidate(similarity: float, *, exact: bool = False, **entry: Any) -> Candidate:
    fields: dict[str, Any] = {
        "id": "e1", "scope": "s", "exact": "x1", "namespace": "shop", "tenant": "t", "model": "m",
        "text": "Cancel my order", "response": "{}", "embedder": EMBEDDER.fingerprint,
        "created_at": time.time(), **entry,
    }  # fmt: skip
    return Candidate(entry=CacheEntry(**fields), similarity=similarity, exact=exact)


class Refuses(Check):
    """A check that refuses everything it sees, and remembers what it saw."""

    name = "always"

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, float]] = []

    async def refuses(self, cached_prompt: str, new_prompt: str, similarity: float) -> bool:
        self.seen.append((cached_prompt, new_prompt, similarity))
        return True


def policy(*checks: Check, **settings: Any) -> ServingPolicy:
    return ServingPolicy(CacheSettings(**settings), EMBEDDER, checks)


async def test_no_candidate_or_one_under_the_threshold_is_a_plain_miss() -> None:
    for found in (None, candidate(0.89)):
        decision = await policy().decide(KEY, found, 0.9)
        assert decision.outcome == Outcome.MISS
        assert decision.refused is None and not decision.shadow


async def test_a_candidate_at_the_threshold_is_served() -> None:
    decision = await policy().decide(KEY, candidate(0.9), 0.9)
    assert decision.outcome == Outcome.HIT and decision.refused is None


@pytest.mark.parametrize(
    ("found", "reason"),
    [
        (candidate(0.99, embedder="other-model:384:abc"), Refusal.EMBEDDER),
        (candidate(0.5, embedder="other-model:384:abc"), Refusal.EMBEDDER),  # never compared
        (candidate(0.99, quarantined=True), Refusal.QUARANTINED),
        (candidate(0.99, exact=True, quarantined=True), Refusal.QUARANTINED),
        (candidate(0.96, min_similarity=0.97), Refusal.ENTRY_BAR),
        (candidate(1.0, exact=True, min_similarity=1.0), Refusal.ENTRY_BAR),  # a false repeat
        (candidate(1.0, min_similarity=1.0), Refusal.ENTRY_BAR),
        (candidate(0.99, answered_by="backup"), Refusal.FALLBACK),
        (candidate(1.0, exact=True, answered_by="backup"), Refusal.FALLBACK),
    ],
)
async def test_what_audits_did_refuses_with_its_reason(found: Candidate, reason: Refusal) -> None:
    decision = await policy().decide(KEY, found, 0.9)
    assert decision.outcome == Outcome.MISS and decision.refused == reason


async def test_an_entry_bar_at_the_similarity_lets_it_through() -> None:
    decision = await policy().decide(KEY, candidate(0.97, min_similarity=0.97), 0.9)
    assert decision.outcome == Outcome.HIT
    exact = await policy().decide(KEY, candidate(1.0, exact=True, min_similarity=0.97), 0.9)
    assert exact.outcome == Outcome.HIT


class HalfBlind(HashEmbedder):
    """Sees every text but those holding ``TAIL`` (as if it were past its window)."""

    def unseen(self, text: str) -> str | None:
        return "too_long" if "TAIL" in text else None


async def test_a_prompt_the_embedder_does_not_see_whole_is_served_only_as_an_exact_repeat() -> None:
    blind = ServingPolicy(CacheSettings(), HalfBlind(), ())  # same fingerprint as EMBEDDER
    for found, new_text in ((candidate(1.0), "Cancel TAIL"), (candidate(1.0, text="TAIL"), "x")):
        key = KEY.model_copy(update={"text": new_text})
        decision = await blind.decide(key, found, 0.9)
        assert decision.outcome == Outcome.MISS and decision.refused == Refusal.UNSEEN
    exact = await blind.decide(KEY, candidate(1.0, exact=True, text="TAIL"), 0.9)
    assert exact.outcome == Outcome.HIT


async def test_an_answer_of_the_alias_itself_or_an_allowed_fallback_is_served() -> None:
    for found in (candidate(0.99, answered_by="m"), candidate(0.99, answered_by=None)):
        assert (await policy().decide(KEY, found, 0.9)).outcome == Outcome.HIT
    allowing = policy(admit_fallbacks=True)
    decision = await allowing.decide(KEY, candidate(0.99, answered_by="backup"), 0.9)
    assert decision.outcome == Outcome.HIT


async def test_a_check_refuses_semantic_candidates_under_its_name_never_exact_ones() -> None:
    check = Refuses()
    semantic = await policy(check).decide(KEY, candidate(0.95), 0.9)
    assert semantic.outcome == Outcome.MISS and semantic.refused == "always"
    assert check.seen == [("Cancel my order", "Don't cancel my order", 0.95)]
    exact = await policy(check).decide(KEY, candidate(1.0, exact=True), 0.9)
    assert exact.outcome == Outcome.HIT and len(check.seen) == 1


async def test_checks_run_only_on_what_would_otherwise_be_served() -> None:
    check = Refuses()
    await policy(check).decide(KEY, candidate(0.5), 0.9)  # under the threshold
    await policy(check).decide(KEY, candidate(0.99, quarantined=True), 0.9)  # already refused
    assert check.seen == []


async def test_shadow_mode_answers_upstream_what_it_would_have_served() -> None:
    shadow = policy(shadow_namespaces=frozenset({"shop"}))
    would = await shadow.decide(KEY, candidate(0.95), 0.9)
    assert would.outcome == Outcome.MISS and would.shadow and would.refused is None
    refused = await shadow.decide(KEY, candidate(0.95, quarantined=True), 0.9)
    assert not refused.shadow and refused.refused == Refusal.QUARANTINED  # would not serve
    other = KEY.model_copy(update={"namespace": "other"})
    assert (await shadow.decide(other, candidate(0.95), 0.9)).outcome == Outcome.HIT


async def test_the_contrast_check_refuses_contradictions_not_paraphrases() -> None:
    check = ContrastCheck()
    assert await check.refuses("Cancel my order", "Don't cancel my order", 0.95)
    assert await check.refuses("Flights to Paris", "Flights to Rome", 0.95)
    assert not await check.refuses("Cancel my order", "Cancel my order please", 0.95)


ANSWER = {"choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}


def body(text: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}]}


async def test_the_cache_acts_on_contrast_guard_and_reports_the_lookup_as_decided() -> None:
    """``cache.contrast_guard`` is acted on by the cache itself: the lookup it returns is the
    policy's decision, candidate and reason included."""
    for guard, outcome, refused in ((False, Outcome.HIT, None), (True, Outcome.MISS, "contrast")):
        cache = SemanticCache(
            CacheSettings(threshold=-1.0, contrast_guard=guard), MemoryStore(), HashEmbedder()
        )
        await cache.open()
        await cache.admit(cache.key(body("Cancel my order"), "t", "ns"), None, ANSWER)
        lookup = await cache.lookup(cache.key(body("Don't cancel my order"), "t", "ns"), -1.0)
        assert (lookup.outcome, lookup.refused) == (outcome, refused)
        assert lookup.candidate is not None and lookup.candidate.entry.text == "Cancel my order"
        assert (lookup.hit is not None) == (outcome == Outcome.HIT)
        await cache.close()


async def test_choose_takes_the_most_similar_candidate_it_would_serve() -> None:
    nearest, second, third = (
        candidate(0.99, id="e1", quarantined=True),
        candidate(0.97, id="e2", min_similarity=0.98),
        candidate(0.95, id="e3"),
    )
    choice = await policy().choose(KEY, [nearest, second, third], 0.9)
    assert choice.decision.outcome == Outcome.HIT and choice.candidate == third
    assert [(p.candidate.entry.id, p.reason) for p in choice.passed_over] == [
        ("e1", Refusal.QUARANTINED),
        ("e2", Refusal.ENTRY_BAR),
    ]
    shadow = await policy(shadow=True).choose(KEY, [nearest, third], 0.9)
    assert shadow.decision.shadow and shadow.candidate == third


async def test_choose_stops_at_the_threshold_and_misses_on_the_nearest() -> None:
    refused, under = candidate(0.99, id="e1", quarantined=True), candidate(0.85, id="e2")
    choice = await policy().choose(KEY, [refused, under], 0.9)
    assert choice.decision.outcome == Outcome.MISS and choice.candidate == refused
    assert choice.decision.refused == Refusal.QUARANTINED and len(choice.passed_over) == 1
    plain = await policy().choose(KEY, [under], 0.9)
    assert plain.candidate == under and plain.decision.refused is None
    assert (await policy().choose(KEY, [], 0.9)).candidate is None


async def test_a_refused_nearest_entry_does_not_hide_a_second_best_that_serves() -> None:
    """``cache.search_k``: the lookup serves the second-best entry when audits quarantined
    or raised the nearest; with ``search_k: 1`` the nearest hides it."""
    for guard in ({"quarantine": True}, {"min_similarity": 1.0}):
        lookups = []
        for k in (4, 1):
            store = MemoryStore()
            cache = SemanticCache(CacheSettings(threshold=-1.0, search_k=k), store, HashEmbedder())
            await cache.open()
            for text in ("Cancel my order", "Please cancel the order I placed"):
                await cache.admit(cache.key(body(text), "t", "ns"), None, ANSWER)
            key = cache.key(body("Cancel my order now"), "t", "ns")
            nearest = (await cache.lookup(key, -1.0)).candidate
            assert nearest is not None and nearest.entry.text == "Cancel my order"
            await store.guard(nearest.entry.scope, nearest.entry.id, **guard)
            lookups.append(await cache.lookup(key, -1.0))
            await cache.close()
        found, hidden = lookups
        assert found.hit is not None and found.hit.entry.text == "Please cancel the order I placed"
        assert found.refused is None
        assert [p.candidate.entry.text for p in found.passed_over] == ["Cancel my order"]
        assert hidden.outcome == Outcome.MISS and hidden.refused is not None


class CountingStore(MemoryStore):
    """Remembers the ``k`` of every search."""

    def __init__(self) -> None:
        super().__init__()
        self.ks: list[int] = []

    async def search(self, scope: str, vector: Any, k: int = 1) -> list[tuple[CacheEntry, float]]:
        self.ks.append(k)
        return await super().search(scope, vector, k)


async def test_the_hot_path_reads_one_entry_and_a_refusal_costs_one_wider_search() -> None:
    store = CountingStore()
    cache = SemanticCache(CacheSettings(threshold=-1.0, search_k=4), store, HashEmbedder())
    await cache.open()
    for text in ("Cancel my order", "Please cancel the order I placed"):
        await cache.admit(cache.key(body(text), "t", "ns"), None, ANSWER)
    key = cache.key(body("Cancel my order now"), "t", "ns")
    served = await cache.lookup(key, -1.0)
    assert served.hit is not None and store.ks == [1]
    await store.guard(key.scope, served.hit.entry.id, quarantine=True)
    again = await cache.lookup(key, -1.0)
    assert again.hit is not None and again.hit.entry.id != served.hit.entry.id
    assert store.ks == [1, 1, 4]
    await cache.close()
