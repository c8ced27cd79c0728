"""Embedding-version rollouts on the in-process store: the cutover rules
(``cache.rollout.refusals``), the steps (start, gate, cutover, rollback, abort, purge) as
compare-and-set changes, the request path under versions (keys, dual-written admissions,
shadow lookups under the target), and a version a replica has not loaded."""

from __future__ import annotations

import time

import pytest

from cache import CacheSettings, SemanticCache
from cache.embedder import HashEmbedder, Vector
from cache.embedder_set import EmbedderSet
from cache.errors import EmbedderError, NotCacheable, RolloutRefused
from cache.observe import NULL_OBSERVER, Observer, Stage
from cache.rollout import ALL, Evidence, Judged, Rollout, Shadow, refusals
from cache.rollout_settings import RolloutSettings
from cache.schema import Outcome, Refusal
from cache.stores.memory import MemoryStore
from cache.versions import MigrationProgress, VersionState

SETTINGS = RolloutSettings(min_shadow_lookups=10, min_judged=4)
GOOD = Evidence(
    shadow={ALL: Shadow(lookups=20, serving_hits=10, target_hits=10, agree=18)},
    target={ALL: Judged(judged=8, false=0)},
    serving={ALL: Judged(judged=8, false=0)},
)


def body(text: str) -> dict[str, object]:
    return {"model": "m", "messages": [{"role": "user", "content": text}]}


def migrating(**update: object) -> VersionState:
    state = VersionState(serving="a", target="b", changed_at=0.0, gate_passed=True)
    return state.model_copy(update=update)


def done(state: VersionState) -> MigrationProgress:
    assert state.target is not None
    now = time.time()
    return MigrationProgress(
        namespace="ns", source=state.serving, target=state.target, done=True,
        started_at=now, updated_at=now,
    )  # fmt: skip


def test_a_cutover_with_every_condition_met_is_allowed() -> None:
    state = migrating()
    assert refusals(state, done(state), GOOD, SETTINGS) == []


def test_each_missing_condition_is_named() -> None:
    assert refusals(None, None, GOOD, SETTINGS) == [
        "no migration in progress (vetcache rollout start)"
    ]
    state = migrating(gate_passed=None)
    reasons = refusals(state, None, Evidence(), SETTINGS)
    assert any("migration is not done" in r for r in reasons)
    assert any("margin gate" in r for r in reasons)
    assert any("0 shadow lookups, 10 needed" in r for r in reasons)
    assert any("0 judged would-be hits" in r for r in reasons)


def test_a_cohort_whose_fp_share_is_too_high_refuses_and_is_named() -> None:
    evidence = GOOD.model_copy(
        update={
            "target": {ALL: Judged(judged=12, false=1), "language=fr": Judged(judged=4, false=1)},
            "serving": {ALL: Judged(judged=12, false=0), "language=fr": Judged(judged=4, false=0)},
        }
    )
    reasons = refusals(migrating(), done(migrating()), evidence, SETTINGS)
    assert len(reasons) == 2
    assert reasons[0].startswith("all: FP share of the target's would-be hits 8.3% > 0.05")
    assert reasons[1].startswith("language=fr: FP share")


def test_a_target_worse_than_the_serving_version_refuses_under_max_fp() -> None:
    loose = SETTINGS.model_copy(update={"max_fp": 0.5, "max_fp_increase": 0.02})
    evidence = GOOD.model_copy(
        update={"target": {ALL: Judged(judged=20, false=2)}, "serving": {ALL: Judged(judged=20)}}
    )
    (reason,) = refusals(migrating(), done(migrating()), evidence, loose)
    assert "> the serving version's 0.0% + 0.02" in reason


def test_a_target_that_would_hit_much_less_refuses() -> None:
    shadow = {ALL: Shadow(lookups=100, serving_hits=60, target_hits=40, agree=70)}
    evidence = GOOD.model_copy(update={"shadow": shadow})
    (reason,) = refusals(migrating(), done(migrating()), evidence, SETTINGS)
    assert "would hit 40.0% of lookups, the serving version hit 60.0%" in reason


def versions() -> EmbedderSet:
    return EmbedderSet(HashEmbedder(), "base", {"v2": HashEmbedder(name="v2")})


async def test_the_steps_move_a_namespace_and_back() -> None:
    store = MemoryStore()
    rollout = Rollout(store, versions(), SETTINGS.model_copy(update={"retention_s": 60}))
    with pytest.raises(RolloutRefused, match="no embedding version 'v3'"):
        await rollout.start("ns", "v3")
    with pytest.raises(RolloutRefused, match="already serves base"):
        await rollout.start("ns", "base")
    state = await rollout.start("ns", "v2")
    assert (state.serving, state.target) == ("hash:32", "v2:32")
    with pytest.raises(RolloutRefused, match="already migrating to v2"):
        await rollout.start("ns", "v2")
    with pytest.raises(RolloutRefused) as refused:
        await rollout.cutover("ns", GOOD)
    assert len(refused.value.reasons) == 2  # not migrated, not gated
    await store.set_migration(done(state))
    await rollout.record_gate("ns", True, "margin 0.3")
    cut = await rollout.cutover("ns", GOOD)
    assert (cut.serving, cut.target, cut.previous) == ("v2:32", None, "hash:32")
    assert cut.previous_until == pytest.approx(time.time() + 60, abs=5)
    back = await rollout.rollback("ns")
    assert (back.serving, back.previous) == ("hash:32", "v2:32")
    with pytest.raises(RolloutRefused, match="retention has not ended"):
        await rollout.purge("ns")


class StaleView(MemoryStore):
    """A store whose reads of the states lag one change behind (another operator's step
    landed between this one's read and its write)."""

    async def versions(self) -> dict[str, VersionState]:
        return {}


async def test_a_step_on_a_state_someone_changed_meanwhile_is_refused() -> None:
    store = StaleView()
    theirs = VersionState(serving="hash:32", target="v2:32", changed_at=1.0)
    assert await store.set_version("ns", theirs, None)
    with pytest.raises(RolloutRefused, match="changed meanwhile"):
        await Rollout(store, versions(), SETTINGS).start("ns", "v2")
    assert not await store.set_version("ns", None, None)  # theirs still stands


class Stages(Observer):
    """Records the stages timed."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def stage(self, stage: Stage, seconds: float) -> None:
        self.seen.append(stage)


async def open_cache(store: MemoryStore, observer: Observer = NULL_OBSERVER) -> SemanticCache:
    settings = CacheSettings(
        threshold=0.99, rollout=SETTINGS.model_copy(update={"shadow_rate": 1.0})
    )
    embedders = versions()
    cache = SemanticCache(
        settings, store, embedders.primary, observer, checks=[], versions=embedders
    )
    await cache.open()
    return cache


async def test_while_migrating_admissions_are_copied_and_lookups_compared_under_the_target() -> (
    None
):
    store = MemoryStore()
    stages = Stages()
    cache = await open_cache(store, stages)
    try:
        await Rollout(store, cache.versions.embedders, SETTINGS).start("ns", "v2")
        await cache.refresh_thresholds()
        key = cache.key(body("hello there"), "t", "ns")
        assert key.embedder == "hash:32"
        entry = await cache.admit(key, None, {"choices": [{"message": {"content": "hi"}}]})
        assert entry is not None
        target_key = key.for_version("v2:32")
        found = await store.search(
            target_key.scope, await HashEmbedder(name="v2").embed("hello there")
        )
        assert [(e.origin, e.embedder) for e, _ in found] == [(entry.id, "v2:32")]
        assert await store.search(target_key.scope, await HashEmbedder().embed("hello there")) != []

        served = await cache.lookup(key, 0.99)
        assert served.outcome == Outcome.HIT and served.hit is not None
        timed = list(stages.seen)
        compared = await cache.shadow.compare(key, served)
        assert stages.seen == timed  # the shadow lookup is not in the hit path's timings
        assert compared is not None
        shadow_key, would = compared
        assert shadow_key.embedder == "v2:32" and would.hit is not None
        assert would.hit.entry.origin == entry.id
        counts = await store.shadow_counts("ns", "v2:32")
        assert counts[f"{ALL}={ALL}"] == {
            "lookups": 1,
            "serving_hits": 1,
            "target_hits": 1,
            "agree": 1,
        }
    finally:
        await cache.close()


async def test_after_a_cutover_keys_are_made_for_the_new_version_and_old_entries_refused() -> None:
    store = MemoryStore()
    cache = await open_cache(store)
    try:
        old_key = cache.key(body("hello there"), "t", "ns")
        await cache.admit(old_key, None, {"choices": [{"message": {"content": "hi"}}]})
        await store.set_version("ns", VersionState(serving="v2:32", changed_at=0.0), None)
        await cache.refresh_thresholds()
        new_key = cache.key(body("hello there"), "t", "ns")
        assert new_key.embedder == "v2:32" and new_key.scope != old_key.scope
        assert (await cache.lookup(new_key, 0.99)).outcome == Outcome.MISS
        entry = await store.get_exact(old_key.scope, old_key.exact)
        assert entry is not None
        decision = await cache.policy.decide(
            new_key, (await cache.lookup(old_key, 0.99)).candidate, 0.99
        )
        assert decision.refused == Refusal.EMBEDDER  # a stray entry of another version
    finally:
        await cache.close()


async def test_a_namespace_serving_a_version_not_loaded_here_is_not_cached() -> None:
    store = MemoryStore()
    cache = await open_cache(store)
    try:
        await store.set_version("ns", VersionState(serving="other:384", changed_at=0.0), None)
        await cache.refresh_thresholds()
        with pytest.raises(NotCacheable) as raised:
            cache.key(body("hello"), "t", "ns")
        assert raised.value.reason == "version_unloaded"
        assert cache.key(body("hello"), "t", "elsewhere").embedder == "hash:32"
    finally:
        await cache.close()


class Broken(HashEmbedder):
    """A target version whose model fails on every text."""

    async def embed(self, text: str, deadline: float | None = None) -> Vector:
        raise EmbedderError("the model failed")


async def test_a_copy_that_fails_leaves_the_admission_standing() -> None:
    store = MemoryStore()
    embedders = EmbedderSet(HashEmbedder(), "base", {"v2": Broken(name="v2")})
    cache = SemanticCache(CacheSettings(), store, embedders.primary, checks=[], versions=embedders)
    await cache.open()
    try:
        await Rollout(store, embedders, SETTINGS).start("ns", "v2")
        await cache.refresh_thresholds()
        key = cache.key(body("hello there"), "t", "ns")
        entry = await cache.admit(key, None, {"choices": [{"message": {"content": "hi"}}]})
        assert entry is not None
        assert await store.get_exact(key.scope, key.exact) == entry
        assert cache.errors == 1  # the failed copy, counted
    finally:
        await cache.close()
