"""A person's label wins both ways: a review saying a judged-false hit was fine undoes what
the false verdict did to the entry (its bar, its quarantine), not only the hard negative; on
fakes (the in-process ledger and store)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import numpy as np
import pytest

from audit.actions import settle
from audit.ledgers.memory import MemoryLedger
from audit.observe import NULL_AUDIT_OBSERVER
from audit.schema import AuditJob, Verdict
from audit.settings import AuditSettings
from cache.schema import CacheEntry
from cache.stores.memory import MemoryStore


def job(new: str, similarity: float, **extra: Any) -> AuditJob:
    return AuditJob(
        job_id=uuid.uuid4().hex, request_id="r1", entry_id="e1", new_prompt=new,
        cached_prompt="Cancel my order", cached_answer="Cancelled.", similarity=similarity,
        threshold=0.9, namespace="shop", model="m", scope="s1", **extra,
    )  # fmt: skip


def label(the_job: AuditJob, kind: str, source: str = "judge") -> Verdict:
    return Verdict(
        id=uuid.uuid4().hex, source=source, job=the_job, verdict=kind, created_at=time.time()
    )


class Entry:
    """One cached entry on the in-process store and ledger, labelled through ``settle``."""

    def __init__(self, **settings: Any) -> None:
        self.store, self.ledger = MemoryStore(), MemoryLedger()
        self.settings = AuditSettings(**settings)

    async def put(self) -> None:
        entry = CacheEntry(
            id="e1", scope="s1", exact="x", namespace="shop", tenant="t", model="m",
            text="Cancel my order", response="{}", embedder="e", created_at=time.time(),
        )  # fmt: skip
        await self.store.put(entry, np.full(4, 0.5, dtype=np.float32), ttl_s=60, cap=None)

    async def settle(self, verdict: Verdict) -> None:
        await settle(verdict, self.ledger, self.store, self.settings, NULL_AUDIT_OBSERVER)

    async def guard(self) -> tuple[float | None, bool]:
        entry = await self.store.get_exact("s1", "x")
        assert entry is not None
        return entry.min_similarity, entry.quarantined


async def test_a_persons_correct_lifts_the_quarantine_a_false_verdict_set() -> None:
    entry = Entry(action="quarantine")
    await entry.put()
    judged = job("Don't cancel my order", 0.95)
    await entry.settle(label(judged, "false_positive"))
    assert await entry.guard() == (None, True)
    await entry.settle(label(judged, "correct", source="review"))
    assert await entry.guard() == (None, False)
    assert await entry.ledger.hard_negatives() == []


async def test_a_persons_correct_restores_the_bar_the_other_false_labels_call_for() -> None:
    entry = Entry(action="raise", raise_margin=0.01)
    await entry.put()
    low, high = job("Cancel my subscription", 0.93), job("Don't cancel my order", 0.95)
    for each in (low, high):
        await entry.settle(label(each, "false_positive"))
    assert (await entry.guard())[0] == pytest.approx(0.96)
    await entry.settle(label(high, "correct", source="review"))
    assert (await entry.guard())[0] == pytest.approx(0.94)  # the lower false hit still holds
    await entry.settle(label(low, "correct", source="review"))
    assert await entry.guard() == (None, False)  # no false label left: no bar of its own


async def test_a_review_of_a_label_that_was_not_false_changes_no_guard() -> None:
    entry = Entry(action="quarantine")
    await entry.put()
    await entry.settle(label(job("Don't cancel my order", 0.95), "false_positive"))
    fine = job("Please cancel my order", 0.97)
    await entry.settle(label(fine, "correct"))
    await entry.settle(label(fine, "correct", source="review"))  # agrees with the judge
    assert await entry.guard() == (None, True)  # the other false verdict still holds


async def test_the_apps_correct_does_not_overturn_a_persons_false() -> None:
    entry = Entry(action="quarantine")
    await entry.put()
    judged = job("Don't cancel my order", 0.95)
    await entry.settle(label(judged, "correct"))
    await entry.settle(label(judged, "false_positive", source="review"))
    assert await entry.guard() == (None, True)
    await entry.settle(label(judged, "correct", source="feedback"))  # the app disagrees
    assert await entry.guard() == (None, True)  # the person's word stands
    await entry.settle(label(judged, "correct", source="review"))  # the person changes it
    assert await entry.guard() == (None, False)
