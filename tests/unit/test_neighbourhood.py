"""An entry's labelled neighbourhood (issue 18, "one number per entry"): a false hit no longer
raises one bar for the whole entry; a new prompt is decided by its nearest labelled
neighbour, so paraphrases on the other side of the entry keep hitting. On fakes: a table
embedder, the in-process store, queue and ledger."""

from __future__ import annotations

import time
import uuid
from typing import Any

import numpy as np

from audit.actions import act_on
from audit.auditor import Auditor
from audit.ledgers.memory import MemoryLedger
from audit.queues.memory import MemoryQueue
from audit.schema import AuditJob, Verdict
from audit.settings import AuditSettings
from cache.embedder import HashEmbedder, Vector
from cache.neighbourhood import LABELS_KEPT, Label, nearest_is_false, neighbours, pack, unpack
from cache.schema import Outcome, Refusal
from cache.semantic import SemanticCache
from cache.settings import CacheSettings
from cache.stores.memory import MemoryStore

ANSWER = {"choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}


def unit(*xs: float) -> Vector:
    vector = np.array(xs, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def at(similarity: float, axis: int) -> Vector:
    """A unit vector at ``similarity`` to the entry's (axis 0), leaning along ``axis``."""
    xs = [similarity, 0.0, 0.0, 0.0]
    xs[axis] = (1.0 - similarity**2) ** 0.5
    return unit(*xs)


ENTRY = "Cancel my order"
TRAP = "Don't cancel my order"
PROMPTS = {
    ENTRY: unit(1, 0, 0, 0),
    TRAP: at(0.951, 1),  # judged false
    "Please cancel my order": at(0.945, 2),  # paraphrases, on another side of the entry
    "Cancel the order I placed": at(0.928, 3),
    "Do not cancel my order": unit(*(at(0.951, 1) + 0.02 * at(0.93, 2))),  # beside the trap
}


class TableEmbedder(HashEmbedder):
    """Vectors from a table: the geometry of the issue's scenario, exactly."""

    def __init__(self) -> None:
        super().__init__(dimension=4)

    async def embed(self, text: str, deadline: float | None = None) -> Vector:
        return PROMPTS[text]


def body(text: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}]}


async def test_a_false_hit_refuses_its_side_of_the_entry_not_the_paraphrases_elsewhere() -> None:
    store, queue, ledger = MemoryStore(), MemoryQueue(), MemoryLedger()
    cache = SemanticCache(CacheSettings(threshold=0.9), store, TableEmbedder())
    settings = AuditSettings(sample_rate=1.0, action="raise")
    auditor = Auditor(settings, queue, ledger, store, run_worker=False)
    await cache.open()
    await cache.admit(cache.key(body(ENTRY), "t", "ns"), None, ANSWER)

    async def ask(text: str) -> tuple[Outcome, str | None, AuditJob | None]:
        key = cache.key(body(text), "t", "ns")
        lookup = await cache.lookup(key, 0.9)
        await auditor.after_lookup(request_id=uuid.uuid4().hex, key=key, lookup=lookup, key_id=None)
        taken = await queue.take("w", 10, 0.01)
        return lookup.outcome, lookup.refused, taken[-1].job if taken else None

    async def label(job: AuditJob | None, kind: str) -> None:
        assert job is not None and job.vector is not None  # the request's vector travels
        done = Verdict.model_validate(
            {"id": uuid.uuid4().hex, "job": job, "verdict": kind, "created_at": time.time()}
        )
        await act_on(done, store, ledger, settings)

    outcome, _, trap = await ask(TRAP)
    assert outcome == Outcome.HIT
    await label(trap, "false_positive")
    outcome, _, paraphrase = await ask("Please cancel my order")
    assert outcome == Outcome.HIT  # 0.945 < 0.951 + margin: one raised bar refused it
    await label(paraphrase, "correct")
    assert (await ask("Cancel the order I placed"))[0] == Outcome.HIT  # 0.928
    for text in (TRAP, "Do not cancel my order"):  # the trap again, and a prompt beside it
        outcome, refused, _ = await ask(text)
        assert (outcome, refused) == (Outcome.MISS, Refusal.NEIGHBOURHOOD)
    key = cache.key(body(ENTRY), "t", "ns")
    entry = await store.get_exact(key.scope, key.exact)
    assert entry is not None and entry.labelled and entry.min_similarity is None
    assert {x.correct for x in await store.labels(entry.scope, entry.id)} == {True, False}
    await cache.close()


async def test_a_person_overturning_the_false_label_reopens_its_side() -> None:
    store, ledger = MemoryStore(), MemoryLedger()
    cache = SemanticCache(CacheSettings(threshold=0.9), store, TableEmbedder())
    await cache.open()
    entry = await cache.admit(cache.key(body(ENTRY), "t", "ns"), None, ANSWER)
    assert entry is not None
    job = AuditJob(
        job_id="j1", request_id="r1", entry_id=entry.id, new_prompt=TRAP, cached_prompt=ENTRY,
        cached_answer="ok", similarity=0.951, threshold=0.9, namespace="ns", model="m",
        scope=entry.scope, vector=pack(PROMPTS[TRAP]),
    )  # fmt: skip
    settings = AuditSettings(action="raise")
    key = cache.key(body(TRAP), "t", "ns")
    for source, kind, outcome in (
        ("judge", "false_positive", Outcome.MISS),
        ("review", "correct", Outcome.HIT),
    ):
        done = Verdict.model_validate(
            {"id": uuid.uuid4().hex, "job": job, "verdict": kind, "source": source,
             "created_at": time.time()}
        )  # fmt: skip
        await ledger.record(done)
        await act_on(done, store, ledger, settings)
        assert (await cache.lookup(key, 0.9)).outcome == outcome
    await cache.close()


def test_the_nearest_label_decides_and_a_tie_goes_to_false() -> None:
    false = Label(id="f", correct=False, similarity=0.951, vector=pack(PROMPTS[TRAP]))
    beside = PROMPTS["Do not cancel my order"]
    paraphrase = PROMPTS["Please cancel my order"]
    assert nearest_is_false(0.95, neighbours([false], beside, 0.95))
    assert not nearest_is_false(0.945, neighbours([false], paraphrase, 0.945))
    # An exact repeat judged false (no vector: the entry's own prompt) closes the entry.
    own = Label(id="x", correct=False, similarity=1.0)
    assert nearest_is_false(1.0, neighbours([own], None, 1.0))
    assert nearest_is_false(0.93, neighbours([own], paraphrase, 0.93))
    # An exact repeat of the entry sees the labels at their similarity to the entry.
    assert not nearest_is_false(1.0, neighbours([false], None, 1.0))
    assert float(np.dot(unpack(pack(beside)), beside)) > 0.999  # float16 keeps cosine


async def test_labels_are_bounded_and_the_false_ones_kept_longest() -> None:
    store = MemoryStore()
    cache = SemanticCache(CacheSettings(threshold=0.9), store, TableEmbedder())
    await cache.open()
    entry = await cache.admit(cache.key(body(ENTRY), "t", "ns"), None, ANSWER)
    assert entry is not None
    false = Label(id="f", correct=False, similarity=0.95, created_at=1.0)
    assert await store.add_label(entry.scope, entry.id, false)
    for n in range(LABELS_KEPT + 3):
        label = Label(id=f"c{n}", correct=True, similarity=0.95, created_at=2.0 + n)
        assert await store.add_label(entry.scope, entry.id, label)
    kept = await store.labels(entry.scope, entry.id)
    ids = {x.id for x in kept}
    assert len(kept) == LABELS_KEPT and "f" in ids and "c0" not in ids  # oldest correct went
    assert not await store.add_label(entry.scope, "gone", false)
    await cache.close()
