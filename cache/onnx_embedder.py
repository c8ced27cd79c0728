"""The embedding model on ONNX Runtime: the same vectors as sentence-transformers on torch
(to ~1e-6 in fp32, cosine > 0.99 int8), several times faster per query on a CPU.

``export`` turns a mean-pooling, normalizing sentence-transformers model into one ONNX graph
with the pooling and normalization inside it (``torch.onnx.export(..., dynamo=False)``),
optionally quantized to int8 weights with per-channel dynamic quantization (per-tensor
quantization loses too much: lowest cosine vs torch ~0.96). The runtime then needs only
onnxruntime, tokenizers and numpy. ``OnnxEmbedder`` exports on first use into a cache
directory (torch is a dependency anyway) and reuses the file after that.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Literal

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

Precision = Literal["fp32", "int8"]
GRAPH = "model.onnx"
META = "vetcache-onnx.json"


def default_dir() -> Path:
    """Where exported models are kept (``VETCACHE_ONNX_DIR``, else the user's cache)."""
    root = os.environ.get("VETCACHE_ONNX_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vetcache", "onnx"
    )
    return Path(root)


def export(model_path: str, out: Path, precision: Precision) -> Path:
    """Write ``out/model.onnx`` (and the tokenizer, and what the runtime needs to know) for
    the sentence-transformers model at ``model_path``; return ``out``.

    Written into a private folder renamed to ``out`` when complete: gateway workers starting
    together may all export, and none must read (or write into) another's half-written
    files. The first rename wins; the others' folders are dropped."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        _export(model_path, staging, precision)
        try:
            staging.rename(out)
        except OSError:
            if not (out / META).is_file():  # left half-written by an older, non-atomic export
                shutil.rmtree(out, ignore_errors=True)
                staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _export(model_path: str, out: Path, precision: Precision) -> None:
    try:
        import torch  # noqa: F401 - checked here, used by the steps below
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover - both are dependencies of vetcache
        raise EmbedderError("exporting to ONNX needs torch and sentence-transformers") from exc
    model = SentenceTransformer(model_path, device="cpu")
    pooling = json.loads((Path(model_path) / "1_Pooling" / "config.json").read_text())
    if not pooling.get("pooling_mode_mean_tokens") or len(model) != 3:
        raise EmbedderError("the onnx backend supports mean-pooling, normalized models only")
    fp32 = out / ("fp32.onnx" if precision == "int8" else GRAPH)
    _trace(model, fp32)
    if precision == "int8":
        _quantize(fp32, out / GRAPH)
        fp32.unlink()
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


def _trace(model: Any, path: Path) -> None:
    """Export the pooled, normalizing encoder to ``path`` (fp32)."""
    import torch

    transformer: Any = model[0].auto_model
    transformer.eval()
    sample = model.tokenizer(["an example sentence"], return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    # The TorchScript exporter (dynamo=False) on purpose: it traces this small encoder into a
    # graph onnxruntime's dynamic quantizer handles; it warns that it is the legacy path, and
    # the tracer warns about shape-dependent Python branches in the model (fine for export).
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", getattr(torch.jit, "TracerWarning", UserWarning))
        # The attention mask's advanced indexing; its indices are never negative (and the
        # vectors are checked against torch's in tests/integration/test_onnx_embedder.py).
        warnings.filterwarnings("ignore", "Exporting aten::index", UserWarning)
        torch.onnx.export(
            _pooled(transformer),
            tuple(sample[name] for name in names),
            str(path),
            input_names=names,
            output_names=["embedding"],
            dynamic_axes={
                **{n: {0: "batch", 1: "tokens"} for n in names},
                "embedding": {0: "batch"},
            },
            opset_version=17,
            dynamo=False,
        )


def _quantize(fp32: Path, int8: Path) -> None:
    """Per-channel dynamic int8 quantization of the MatMul weights."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The quantizer logs advice (shape inference first) to the root logger as a warning on
    # every run; it changes nothing for this graph (the vectors are tested).
    logging.getLogger().addFilter(_not_advice)
    try:
        quantize_dynamic(
            str(fp32), str(int8), per_channel=True, weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
        )  # fmt: skip
    finally:
        logging.getLogger().removeFilter(_not_advice)


def _not_advice(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Please consider to run pre-processing")


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
            # Each text runs alone (see ``_encode``), so waiting for a batch buys no shared
            # forward pass, only latency: measured here, embed() p50 4.7 ms with a 2 ms window
            # against 2.4 ms with none.
            self.batch_window = 0.0
            self.per_text = True
        self.directory = directory or default_dir()
        self._tokenizer: Any = None

    def _load(self) -> None:
        try:
            import onnxruntime as ort
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
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        self._model = ort.InferenceSession(
            str(folder / GRAPH), options, providers=["CPUExecutionProvider"]
        )
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
        if self.precision == "int8" and len(texts) > 1:
            # Dynamic quantization scales activations per run, so a text's int8 vector would
            # move with its batch neighbours (lowest cosine to torch 0.9898 batched, 0.9910
            # alone here): one text per run keeps a text's vector the same under any traffic.
            return np.concatenate([self._infer([text]) for text in texts])
        return self._infer(texts)

    def _infer(self, texts: list[str]) -> npt.NDArray[np.float32]:
        encoded = self._tokenizer.encode_batch(texts)
        feed = {
            "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
        }
        (vectors,) = self._model.run(["embedding"], feed)
        return np.asarray(vectors, dtype=np.float32)
