"""The threshold autopilot on in-process parts: up fast under false positives, down slowly
when labels are clean, never out of bounds, never without enough new labels."""

from __future__ import annotations

import itertools
import time

import pytest

from audit.autopilot import Autopilot, Move
from audit.ledgers.memory import MemoryLedger
from audit.schema import VerdictKind
from audit.settings import AuditSettings, AutopilotSettings
from cache.embedder import HashEmbedder
from cache.semantic import SemanticCache
from cache.settings import CacheSettings
from cache.stores.memory import MemoryStore
from tests.conftest import record_verdicts

PILOT = AutopilotSettings(
    namespaces=frozenset({"shop"}), target_fp=0.05, min_threshold=0.88, max_threshold=0.94,
    max_step=0.02, min_new_verdicts=20,
)  # fmt: skip


async def record(ledger: MemoryLedger, similarity: float, kind: VerdictKind, count: int) -> None:
    await record_verdicts(ledger, "shop", similarity, kind, count)


def pilot() -> tuple[Autopilot, MemoryLedger, SemanticCache, list[Move]]:
    ledger = MemoryLedger()
    cache = SemanticCache(CacheSettings(threshold=0.90), MemoryStore(), HashEmbedder())
    moves: list[Move] = []
    autopilot = Autopilot(PILOT, AuditSettings(sample_rate=1.0), ledger, cache, "me", moves.append)
    return autopilot, ledger, cache, moves


async def test_a_burst_of_false_positives_raises_the_threshold_within_bounds() -> None:
    autopilot, ledger, cache, moves = pilot()
    await record(ledger, 0.91, "false_positive", 20)
    await record(ledger, 0.91, "correct", 20)
    [up] = await autopilot.step(now=time.time())
    assert (up.old, up.new, up.direction) == (0.90, 0.92, "up")  # one bounded step
    assert cache.threshold("shop", None, False) == 0.92
    assert await autopilot.step(now=time.time()) == []  # no new labels since the move
    await record(ledger, 0.93, "false_positive", 20)
    [up] = await autopilot.step(now=time.time())
    assert up.new == 0.94  # the ceiling
    await record(ledger, 0.95, "false_positive", 30)
    assert await autopilot.step(now=time.time()) == []  # never above max_threshold
    assert cache.threshold("shop", None, False) == 0.94
    assert cache.threshold("other", None, False) == 0.90  # only opted-in namespaces move
    assert [m.direction for m in moves] == ["up", "up"]


async def test_clean_labels_lower_the_threshold_slowly_to_the_floor() -> None:
    autopilot, ledger, cache, moves = pilot()
    await record(ledger, 0.899, "correct", 19)
    assert await autopilot.step(now=time.time()) == []  # 19 < min_new_verdicts
    seen = [cache.threshold("shop", None, False)]
    for _ in range(12):
        # Clean labels (near-miss audits) just under the line: evidence in the band a
        # step down opens.
        await record(ledger, round(seen[-1] - 0.002, 4), "correct", 100)
        await autopilot.step(now=time.time())
        seen.append(cache.threshold("shop", None, False))
    steps = [round(a - b, 4) for a, b in itertools.pairwise(seen)]
    assert all(0 <= s <= 0.005 for s in steps)  # down a quarter step at most each time
    assert seen[-1] == 0.88 and min(seen) == 0.88  # the floor, never below
    assert all(m.direction == "down" for m in moves) and len(moves) == 4
    assert all(m.labels_in_band >= PILOT.min_band_labels for m in moves)


async def test_clean_labels_far_above_the_line_never_lower_it() -> None:
    """Hundreds of correct labels at 0.97 say nothing about prompts at 0.895: the
    threshold stays where the evidence is (issue 18)."""
    autopilot, ledger, cache, moves = pilot()
    for _ in range(6):
        await record(ledger, 0.97, "correct", 100)
        assert await autopilot.step(now=time.time()) == []
    assert cache.threshold("shop", None, False) == 0.90 and moves == []
    # A few labels in the band are not enough either (min_band_labels, 10 by default).
    await record(ledger, 0.897, "correct", PILOT.min_band_labels - 1)
    assert await autopilot.step(now=time.time()) == []
    await record(ledger, 0.897, "correct", 1)
    [down] = await autopilot.step(now=time.time())
    assert (down.new, down.labels_in_band) == (0.895, PILOT.min_band_labels)


def test_bounds_must_be_in_order() -> None:
    with pytest.raises(ValueError, match="min_threshold"):
        AutopilotSettings(min_threshold=0.95, max_threshold=0.9)
