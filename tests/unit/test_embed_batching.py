"""Embeddings batch when texts wait, not when the thread is free; a text's vector does not
depend on its batch neighbours; a batch is cut where it would run past a lookup's deadline.

The int8 tests run a tiny ONNX export (a random 2-layer, 64-wide BERT with the bundled
tokenizer, ``tests.tiny_models``) through the same export and graphs as the default model."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from cache.embedder import SentenceTransformerEmbedder
from cache.onnx_embedder import OnnxEmbedder

SLACK_S = 0.03  # a loaded 2-core machine's scheduling delay

TEXTS = [
    "how do I reset my password",
    "where is my parcel",
    "cancel my order please, it was a mistake and I do not need it any more",
    "hi",
    "what is the refund policy for a damaged item that arrived late",
    "track my order",
    "change the address on my account",
]


class CountingSession:
    """A fake around an onnxruntime session: the batch size of every run, then the run."""

    def __init__(self, inner: Any, sizes: list[int]) -> None:
        self.inner, self.sizes = inner, sizes

    def run(self, names: list[str], feed: dict[str, Any]) -> Any:
        self.sizes.append(len(feed["input_ids"]))
        return self.inner.run(names, feed)


@pytest.fixture(scope="module")
def tiny_int8(tmp_path_factory: pytest.TempPathFactory) -> OnnxEmbedder:
    from tests.tiny_models import tiny_embedder

    root = tmp_path_factory.mktemp("tiny-int8")
    embedder = OnnxEmbedder(str(tiny_embedder(root / "tiny")), directory=root / "onnx")
    embedder._load()  # exports once for the module
    return embedder


def cosines(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return np.asarray(np.sum(a * b, axis=1), dtype=np.float32)


def test_an_int8_batch_is_one_run_and_each_vector_is_its_vector_alone(
    tiny_int8: OnnxEmbedder,
) -> None:
    alone = np.concatenate([tiny_int8._encode([text]) for text in TEXTS])
    sizes: list[int] = []
    tiny_int8._rows = CountingSession(tiny_int8._rows, sizes)
    try:
        batched = tiny_int8._encode(TEXTS)
        reversed_batch = tiny_int8._encode(TEXTS[::-1])[::-1]
    finally:
        tiny_int8._rows = tiny_int8._rows.inner
    assert sizes == [len(TEXTS), len(TEXTS)]  # one run per batch, not one per text
    assert cosines(batched, alone).min() >= 0.9999
    assert cosines(reversed_batch, alone).min() >= 0.9999  # other neighbours, same vectors


async def test_texts_waiting_behind_a_run_share_the_next_one_and_a_lone_text_runs_at_once(
    tiny_int8: OnnxEmbedder,
) -> None:
    sizes: list[int] = []
    model, rows = tiny_int8._model, tiny_int8._rows
    tiny_int8._model, tiny_int8._rows = CountingSession(model, sizes), CountingSession(rows, sizes)
    await tiny_int8.open()
    try:
        for text in TEXTS[:3]:  # one at a time: the thread is free each time
            await tiny_int8.embed(text)
        assert sizes == [1, 1, 1]
        gate = threading.Event()
        busy = asyncio.get_running_loop().run_in_executor(tiny_int8._pool, gate.wait)
        waiting = [asyncio.ensure_future(tiny_int8.embed(text)) for text in TEXTS]
        await asyncio.sleep(0.05)  # all queued behind the busy thread
        gate.set()
        await busy
        vectors = await asyncio.gather(*waiting)
    finally:
        await tiny_int8.close()
        tiny_int8._model, tiny_int8._rows = model, rows
    assert sizes == [1, 1, 1, len(TEXTS)]
    alone = np.concatenate([tiny_int8._encode([text]) for text in TEXTS])
    assert cosines(np.stack(vectors), alone).min() >= 0.9999


class BatchingModel(SentenceTransformerEmbedder):
    """The real queue and thread around a fake model that runs a batch in one pass costing
    ``cost_s`` per text (a text starting with "slow" three times that), recording what it
    ran and when it finished."""

    def __init__(self, cost_s: float) -> None:
        super().__init__("fake", batch_window_ms=0, max_batch=32)
        self.cost_s = cost_s
        self.runs: list[tuple[list[str], float]] = []

    def _load(self) -> None:
        self.dimension = 8
        self.fingerprint = "batching:8"
        self._model = object()

    def _encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        time.sleep(sum(self.cost_s * (3 if t.startswith("slow") else 1) for t in texts))
        self.runs.append((list(texts), time.monotonic()))
        return np.full((len(texts), 8), 8**-0.5, dtype=np.float32)


async def test_a_batch_is_cut_where_it_would_end_past_a_lookups_deadline() -> None:
    """Lookups with a 110 ms budget at 20 ms a text queue behind a 60 ms admission text: five
    pass the door (the sixth is shed). When the thread frees up, 50 ms are left: the next run
    takes the two texts that can finish in time, not all five (100 ms, 50 past the deadline);
    the ones left are dropped unrun rather than embedded late."""
    model = BatchingModel(cost_s=0.02)
    await model.open()
    loop = asyncio.get_running_loop()
    try:
        await model.embed("warm up")  # the queue now knows the cost: ~20 ms a text
        admission = asyncio.ensure_future(model.embed("slow: an answer to admit"))
        await asyncio.sleep(0.001)  # the thread took it, alone
        deadline = loop.time() + 0.11
        lookups = [asyncio.ensure_future(model.embed(f"q{i}", deadline)) for i in range(6)]
        results = await asyncio.gather(*lookups, return_exceptions=True)
        await admission
    finally:
        await model.close()
    kinds = [type(result).__name__ for result in results]
    assert kinds.count("Overloaded") >= 1  # shed at the door, as without batching
    ran = [texts for texts, _ in model.runs[2:]]
    assert ran and 1 < len(ran[0]) < 5, model.runs
    assert all(finished <= deadline + SLACK_S for _, finished in model.runs[2:])
    assert kinds.count("ndarray") == sum(len(texts) for texts in ran)
    assert kinds.count("TimeoutError") >= 1
    assert set(kinds) <= {"ndarray", "TimeoutError", "Overloaded"}


def test_the_int8_backend_waits_for_no_batch(tiny_int8: OnnxEmbedder) -> None:
    assert tiny_int8.batch_window == 0.0


def test_the_per_row_graph_is_written_once_next_to_the_export(
    tiny_int8: OnnxEmbedder, tmp_path: Path
) -> None:
    [folder] = [p for p in tiny_int8.directory.iterdir() if p.name.endswith("-int8")]
    made = (folder / "rows.onnx").stat().st_mtime_ns
    again = OnnxEmbedder(tiny_int8.model_name, directory=tiny_int8.directory)
    again._load()
    assert (folder / "rows.onnx").stat().st_mtime_ns == made
    assert not [p for p in folder.iterdir() if p.name.startswith(".rows-")]
