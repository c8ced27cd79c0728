"""What every ONNX export of a model shares (the embedder's, ``cache.onnx_embedder``, and the
verifier's, ``cache.verifier_model``): where exports live, publishing an export folder whole,
tracing a torch module into an ONNX graph, int8 quantization, and opening a session.

Exports are traced with the TorchScript exporter (``torch.onnx.export(..., dynamo=False)``)
and, for int8, quantized with per-channel dynamic quantization of the MatMul weights
(per-tensor quantization loses too much: lowest cosine vs torch ~0.96 for the embedder).
torch is needed only to export; running an export needs onnxruntime, tokenizers and numpy.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

Precision = Literal["fp32", "int8"]
GRAPH = "model.onnx"
"""The graph's file name in an export folder."""


def default_dir() -> Path:
    """Where exported models are kept (``VETCACHE_ONNX_DIR``, else the user's cache)."""
    root = os.environ.get("VETCACHE_ONNX_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vetcache", "onnx"
    )
    return Path(root)


def publish(out: Path, write: Callable[[Path], None], meta: str) -> Path:
    """Have ``write`` fill a private folder, renamed to ``out`` when complete; return ``out``.

    Gateway workers starting together may all export, and none must read (or write into)
    another's half-written files. The first rename wins; the others' folders are dropped. A
    folder without its ``meta`` file was left half-written by an older, non-atomic export and
    is replaced."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        write(staging)
        try:
            staging.rename(out)
        except OSError:
            if not (out / meta).is_file():
                shutil.rmtree(out, ignore_errors=True)
                staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def trace(
    module: Any, sample: Mapping[str, Any], path: Path, output: str, precision: Precision
) -> None:
    """Export ``module`` (called with the ``sample`` tensors, by name, batch and tokens
    dynamic) to ``path`` as one graph whose output is ``output`` (batch dynamic), quantized
    to int8 when ``precision`` says so."""
    import torch

    names = list(sample)
    fp32 = path.with_name("fp32.onnx") if precision == "int8" else path
    # The TorchScript exporter (dynamo=False) on purpose: it traces these small encoders into
    # a graph onnxruntime's dynamic quantizer handles; it warns that it is the legacy path,
    # and the tracer warns about shape-dependent Python branches in the model (fine for
    # export).
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", getattr(torch.jit, "TracerWarning", UserWarning))
        # The attention mask's advanced indexing; its indices are never negative (and the
        # outputs are checked against torch's in tests/integration/test_onnx_embedder.py and
        # test_verifier_model.py).
        warnings.filterwarnings("ignore", "Exporting aten::index", UserWarning)
        torch.onnx.export(
            module,
            tuple(sample[name] for name in names),
            str(fp32),
            input_names=names,
            output_names=[output],
            dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in names}, output: {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    if precision == "int8":
        quantize(fp32, path)
        fp32.unlink()


def quantize(fp32: Path, int8: Path) -> None:
    """Per-channel dynamic int8 quantization of the MatMul weights."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The quantizer logs advice (shape inference first) to the root logger as a warning on
    # every run; it changes nothing for these graphs (their outputs are tested).
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


def session(path: Path, threads: int) -> Any:
    """An onnxruntime session on the CPU for the graph at ``path``, on ``threads`` threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
