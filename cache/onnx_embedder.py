"""The embedding model on ONNX Runtime: the same vectors as sentence-transformers on torch
(to ~1e-6 in fp32, cosine > 0.99 int8), several times faster per query on a CPU.

``export`` turns a mean-pooling, normalizing sentence-transformers model into one ONNX graph
with the pooling and normalization inside it (``torch.onnx.export(..., dynamo=False)``),
optionally quantized to int8 weights with per-channel dynamic quantization (per-tensor
quantization loses too much: lowest cosine vs torch ~0.96). The runtime then needs only
onnxruntime, tokenizers and numpy. ``OnnxEmbedder`` exports on first use into a cache
directory (torch is a dependency anyway) and reuses the file after that.

int8 embeds texts that waited together in one run of a second graph, ``cache.onnx_rows``'s
rewrite of the first with each text quantized on its own, so a text's vector does not depend
on its batch neighbours; a text that waited alone runs in the original graph (its vector is
the same, and that graph is the faster one for one text).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cache.blind_spots import Window
from cache.embedder import (
    BUNDLED_MODEL,
    SentenceTransformerEmbedder,
    _weights_digest,
    resolve_model,
)
from cache.errors import EmbedderError
from cache.onnx_export import GRAPH, Precision, default_dir, publish, session, trace
from cache.onnx_rows import per_row

META = "vetcache-onnx.json"
ROWS_GRAPH = "rows.onnx"
"""The int8 export's batch graph (``cache.onnx_rows``), made next to it on first load."""


def export(model_path: str, out: Path, precision: Precision) -> Path:
    """Write ``out/model.onnx`` (and the tokenizer, and what the runtime needs to know) for
    the sentence-transformers model at ``model_path``; return ``out``. Published whole
    (``cache.onnx_export.publish``): workers starting together never read half an export."""
    return publish(out, lambda staging: _export(model_path, staging, precision), META)


def _export(model_path: str, out: Path, precision: Precision) -> None:
    try:
        import torch  # noqa: F401 - checked here, used by the steps below
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover - both are dependencies of vetcache
        raise EmbedderError("exporting to ONNX needs torch and sentence-transformers") from exc
    model = SentenceTransformer(model_path, device="cpu")
    # Asked of the loaded module, not its config file: sentence-transformers 6 saves
    # ``"pooling_mode": "mean"`` where older versions wrote ``pooling_mode_mean_tokens``.
    if len(model) != 3 or getattr(model[1], "pooling_mode", None) not in ("mean", ("mean",)):
        raise EmbedderError("the onnx backend supports mean-pooling, normalized models only")
    transformer: Any = model[0].auto_model
    transformer.eval()
    sample = model.tokenizer(["an example sentence"], return_tensors="pt")
    names = ("input_ids", "attention_mask", "token_type_ids")
    trace(_pooled(transformer), {n: sample[n] for n in names}, out / GRAPH, "embedding", precision)
    tokenizer = Path(model_path) / "tokenizer.json"
    (out / "tokenizer.json").write_bytes(tokenizer.read_bytes())
    meta = {
        "max_tokens": int(model.max_seq_length or 512),
        "pad_token": model.tokenizer.pad_token,
        "dimension": _dimension(model),
        "precision": precision,
    }
    (out / META).write_text(json.dumps(meta))


def _pooled(transformer: Any) -> Any:
    """The transformer, mean pooling over real tokens, then L2 normalization: one module."""
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    return Pooled(transformer)


def _dimension(model: Any) -> int:
    # sentence-transformers renamed the method (the old name warns).
    method = getattr(model, "get_embedding_dimension", None)
    return int((method or model.get_sentence_embedding_dimension)() or 0)


class OnnxEmbedder(SentenceTransformerEmbedder):
    """A sentence-transformers model exported to ONNX, behind the same micro-batching queue."""

    def __init__(
        self,
        model: str = BUNDLED_MODEL,
        *,
        precision: Precision = "int8",
        directory: Path | None = None,
        batch_window_ms: float = 2.0,
        max_batch: int = 32,
        threads: int = 1,
    ) -> None:
        super().__init__(
            model, batch_window_ms=batch_window_ms, max_batch=max_batch, threads=threads
        )
        self.precision: Precision = precision
        if precision == "int8":
            # No waiting for a batch: the texts that queued while the thread was busy run
            # together, and a text that finds the thread free runs at once (a window cost
            # c=1 ~2 ms: embed() p50 4.7 ms with a 2 ms window against 2.4 ms with none).
            self.batch_window = 0.0
        self.directory = directory or default_dir()
        self._tokenizer: Any = None
        self._rows: Any = None

    def _load(self) -> None:
        try:
            import onnxruntime  # noqa: F401 - checked here, opened by ``session``
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise EmbedderError("the onnx backend needs onnxruntime and tokenizers") from exc
        path = resolve_model(self.model_name)
        digest = _weights_digest(path)
        model_id = self.model_name if self.model_name == BUNDLED_MODEL else Path(path).name
        name = hashlib.sha256(f"{model_id}:{digest}".encode()).hexdigest()[:16]
        folder = self.directory / f"{name}-{self.precision}"
        if not (folder / META).is_file():
            export(path, folder, self.precision)
        meta = json.loads((folder / META).read_text())
        self._model = session(folder / GRAPH, self.threads)
        if self.precision == "int8":
            self._rows = session(_rows_graph(folder), self.threads)
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=meta["max_tokens"])
        tokenizer.enable_padding(
            pad_id=tokenizer.token_to_id(meta["pad_token"]), pad_token=meta["pad_token"]
        )
        self._tokenizer = tokenizer
        self.window = Window(tokenizer, meta["max_tokens"])
        self.dimension = int(meta["dimension"])
        # Not the torch model's fingerprint: int8 vectors differ a little, and vectors of
        # different fingerprints are never compared (entries are scoped by it).
        self.fingerprint = f"{model_id}:{self.dimension}:{digest}:onnx-{self.precision}"

    def _encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        # int8 batches run in the per-row graph: the original one scales activations per run,
        # so a text's vector would move with its batch neighbours (lowest cosine to the same
        # text alone ~0.978).
        graph = self._rows if self._rows is not None and len(texts) > 1 else self._model
        return self._infer(graph, texts)

    def _infer(self, graph: Any, texts: list[str]) -> npt.NDArray[np.float32]:
        encoded = self._tokenizer.encode_batch(texts)
        feed = {
            "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
        }
        (vectors,) = graph.run(["embedding"], feed)
        return np.asarray(vectors, dtype=np.float32)


def _rows_graph(folder: Path) -> Path:
    """The export's per-row batch graph, written (whole: a temporary file renamed into
    place, so workers starting together never read half of one) on first use."""
    target = folder / ROWS_GRAPH
    if not target.is_file():
        fd, staging = tempfile.mkstemp(prefix=".rows-", suffix=".onnx", dir=folder)
        os.close(fd)
        try:
            per_row(folder / GRAPH, Path(staging))
            os.chmod(staging, 0o644)
            os.replace(staging, target)
        finally:
            Path(staging).unlink(missing_ok=True)
    return target
