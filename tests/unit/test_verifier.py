"""The learned verifier on the hit path (``cache.verifier``): its band, its operating point,
shadow mode, timeouts and failures, and what the policy and the lookup carry of it; on fakes
(``FakeScorer``, a hash embedder, the in-process store)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from cache import Check, Outcome, ServingPolicy
from cache.checks import default_checks
from cache.contrast import ContrastCheck
from cache.embedder import HashEmbedder
from cache.observe import Observer
from cache.semantic import SemanticCache
from cache.settings import CacheSettings
from cache.stores.memory import MemoryStore
from cache.verifier import FakeScorer, VerifierCheck
from cache.verifier_settings import VerifierSettings
from tests.unit.test_policy import EMBEDDER, KEY, candidate

TRAP = KEY.text  # "Don't cancel my order", against the cached "Cancel my order"


class Recorder(Observer):
    """Keeps every verdict the verifier reports."""

    def __init__(self) -> None:
        self.verdicts: list[tuple[str, str, float | None]] = []

    def verified(self, verdict: str, mode: str, score: float | None, seconds: float) -> None:
        assert seconds >= 0
        self.verdicts.append((verdict, mode, score))


async def opened(scorer: FakeScorer, observer: Observer | None = None, **settings: Any) -> Any:
    """A policy whose only check is a verifier on ``scorer``, opened; and the check."""
    check = VerifierCheck(VerifierSettings(model="unused", **settings), scorer=scorer)
    policy = ServingPolicy(CacheSettings(), EMBEDDER, [check])
    await policy.open(observer or Observer())
    return policy, check


@pytest.mark.parametrize(
    ("similarity", "score", "outcome", "scored"),
    [
        (0.90, 0.1, Outcome.MISS, True),  # in the band, rejected
        (0.90, 0.9, Outcome.HIT, True),  # in the band, agreed
        (0.96, 0.1, Outcome.MISS, True),  # just under the bar
        (0.97, 0.1, Outcome.HIT, False),  # at the bar: similarity alone is trusted
        (0.99, 0.1, Outcome.HIT, False),
        (0.89, 0.9, Outcome.MISS, False),  # under the floor: a plain miss, never scored
    ],
)
async def test_the_band_floor_to_bar_is_verified_and_only_it(
    similarity: float, score: float, outcome: Outcome, scored: bool
) -> None:
    scorer = FakeScorer({TRAP: score})
    policy, check = await opened(scorer, bar=0.97)
    decision = await policy.decide(KEY, candidate(similarity), 0.9)
    assert decision.outcome == outcome
    assert decision.refused == ("verifier" if outcome == Outcome.MISS and scored else None)
    assert scorer.seen == ([("Cancel my order", TRAP)] if scored else [])  # (cached, new)
    assert decision.verifier_score == (score if scored else None)
    assert decision.verifier == (scorer.fingerprint if scored else "")
    await check.close()


async def test_exact_repeats_are_never_verified() -> None:
    scorer = FakeScorer(default=0.0)
    policy, check = await opened(scorer)
    decision = await policy.decide(KEY, candidate(1.0, exact=True), 0.9)
    assert decision.outcome == Outcome.HIT and scorer.seen == []
    await check.close()


@pytest.mark.parametrize(
    ("min_score", "card", "served"),
    [(None, 0.7, False), (None, 0.5, True), (0.5, 0.7, True), (0.8, 0.5, False)],
)
async def test_min_score_defaults_to_the_cards_operating_point(
    min_score: float | None, card: float, served: bool
) -> None:
    policy, check = await opened(FakeScorer({TRAP: 0.6}, threshold=card), min_score=min_score)
    decision = await policy.decide(KEY, candidate(0.95), 0.9)
    assert (decision.outcome == Outcome.HIT) == served
    await check.close()


async def test_shadow_mode_scores_and_counts_but_never_refuses() -> None:
    recorder = Recorder()
    policy, check = await opened(FakeScorer({TRAP: 0.1}), recorder, mode="shadow")
    decision = await policy.decide(KEY, candidate(0.95), 0.9)
    assert decision.outcome == Outcome.HIT and decision.refused is None
    assert decision.verifier_score == 0.1
    assert recorder.verdicts == [("refuse", "shadow", 0.1)]  # would refuse
    await check.close()


@pytest.mark.parametrize("mode", ["serve", "shadow"])
async def test_a_slow_or_failing_verifier_refuses_in_serve_mode_and_is_counted(mode: str) -> None:
    for scorer, verdict in (
        (FakeScorer(delay_s=0.2), "timeout"),
        (FakeScorer(fails=True), "error"),
    ):
        recorder = Recorder()
        policy, check = await opened(scorer, recorder, mode=mode, timeout_ms=20)
        started = time.perf_counter()
        decision = await policy.decide(KEY, candidate(0.95), 0.9)
        assert time.perf_counter() - started < 0.15  # did not wait for the slow model
        assert decision.outcome == (Outcome.MISS if mode == "serve" else Outcome.HIT)
        assert decision.refused == ("verifier" if mode == "serve" else None)
        assert decision.verifier_score is None
        assert recorder.verdicts == [(verdict, mode, None)]
        await check.close()


async def test_agreement_is_counted_with_its_score() -> None:
    recorder = Recorder()
    policy, check = await opened(FakeScorer({TRAP: 0.8}), recorder)
    await policy.decide(KEY, candidate(0.95), 0.9)
    assert recorder.verdicts == [("agree", "serve", 0.8)]
    await check.close()


class Counts(Check):
    """A rule that agrees with everything and counts what it saw."""

    name = "counts"

    def __init__(self) -> None:
        self.calls = 0

    async def refuses(self, cached_prompt: str, new_prompt: str, similarity: float) -> bool:
        self.calls += 1
        return False


async def test_the_verifier_runs_last_after_the_rules() -> None:
    # The contrast rules refuse the trap first: the verifier is not asked.
    scorer = FakeScorer(default=1.0)
    check = VerifierCheck(VerifierSettings(model="unused"), scorer=scorer)
    settings = CacheSettings(contrast_guard=True, threshold=-1.0)
    cache = SemanticCache(settings, MemoryStore(), HashEmbedder(), checks=[ContrastCheck(), check])
    await cache.open()
    decision = await cache.policy.decide(KEY, candidate(0.95), 0.9)
    assert decision.refused == "contrast" and scorer.seen == []
    await cache.close()
    assert [type(c).__name__ for c in default_checks(settings)] == [
        "LanguageCheck", "ContrastCheck",
    ]  # fmt: skip
    with_verifier = settings.model_copy(update={"verifier": VerifierSettings(model="m")})
    assert [type(c).__name__ for c in default_checks(with_verifier)][-1] == "VerifierCheck"


ANSWER = {"choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}


def body(text: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}]}


async def test_the_lookup_carries_the_score_of_the_served_or_refused_candidate() -> None:
    scorer = FakeScorer({"Cancel my order please": 0.9, TRAP: 0.2})
    check = VerifierCheck(VerifierSettings(model="unused"), scorer=scorer)
    cache = SemanticCache(
        CacheSettings(threshold=-1.0), MemoryStore(), HashEmbedder(), checks=[check]
    )
    await cache.open()
    await cache.admit(cache.key(body("Cancel my order"), "t", "ns"), None, ANSWER)
    served = await cache.lookup(cache.key(body("Cancel my order please"), "t", "ns"), -1.0)
    assert (served.outcome, served.verifier_score) == (Outcome.HIT, 0.9)
    assert served.verifier == scorer.fingerprint
    refused = await cache.lookup(cache.key(body(TRAP), "t", "ns"), -1.0)
    assert (refused.outcome, refused.refused, refused.verifier_score) == (
        Outcome.MISS, "verifier", 0.2,
    )  # fmt: skip
    await cache.close()


async def test_a_wider_search_does_not_ask_the_verifier_twice_about_one_entry() -> None:
    # The nearest is refused; the wider search finds it again with the second-best: the
    # verifier scores each pair once (it refuses both).
    scorer = FakeScorer({TRAP: 0.2})
    check = VerifierCheck(VerifierSettings(model="unused"), scorer=scorer)
    cache = SemanticCache(
        CacheSettings(threshold=-1.0, search_k=4), MemoryStore(), HashEmbedder(), checks=[check]
    )
    await cache.open()
    for text in ("Cancel my order", "Keep my order"):
        await cache.admit(cache.key(body(text), "t", "ns"), None, ANSWER)
    lookup = await cache.lookup(cache.key(body(TRAP), "t", "ns"), -1.0)
    assert sorted(scorer.seen) == [("Cancel my order", TRAP), ("Keep my order", TRAP)]
    assert [p.reason for p in lookup.passed_over] == ["verifier", "verifier"]
    assert (lookup.refused, lookup.verifier_score) == ("verifier", 0.2)
    await cache.close()
