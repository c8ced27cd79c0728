"""The verifier's model on ONNX Runtime: a sentence-transformers CrossEncoder ``vetcache train``
saved, scoring (cached prompt, new prompt) pairs 0-1 (the probability that the answer cached
for the first serves the second).

A verifier folder is what ``CrossEncoder.save`` writes (a ``BertForSequenceClassification``
with one label, its tokenizer) plus the model card ``vetcache-verifier.json`` (at least
``name``, ``threshold``: the operating point, ``base_model``). ``load_scorer`` exports the
folder once to an ONNX graph of the logits (int8: per-channel dynamic quantization, as the
embedder's; ``cache.onnx_export``), kept in the ONNX directory under the weights' digest, and
scores with onnxruntime, tokenizers and numpy only: sigmoid(logit), as the CrossEncoder's
default activation for one label does.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cache.embedder import _weights_digest
from cache.errors import VerifierError
from cache.onnx_export import GRAPH, Precision, default_dir, publish, session, trace

DEFAULT_MODEL = "default"
"""``cache.verifier.model`` naming the default verifier: the one ``vetcache train --default``
builds from the pairs the project ships (``default_folder``)."""
CARD = "vetcache-verifier.json"
"""The model card's file name in a verifier folder."""
META = "vetcache-onnx.json"
"""What the runtime needs to know, beside an export's graph."""


def read_card(path: Path) -> dict[str, Any]:
    """The model card of the verifier folder at ``path`` (``VerifierError`` when it is not
    one: no folder, no card, or a card without ``name`` and a 0-1 ``threshold``)."""
    if not path.is_dir():
        raise VerifierError(f"verifier model {str(path)!r} is not a folder")
    try:
        card = json.loads((path / CARD).read_text())
    except FileNotFoundError:
        raise VerifierError(f"verifier model {str(path)!r} has no {CARD} (model card)") from None
    except (OSError, ValueError) as exc:
        raise VerifierError(f"verifier model card {str(path / CARD)!r}: {exc}") from None
    threshold = card.get("threshold") if isinstance(card, dict) else None
    if not isinstance(card, dict) or not isinstance(card.get("name"), str):
        raise VerifierError(f'{str(path / CARD)!r} names no model ("name")')
    if not isinstance(threshold, int | float) or not 0.0 <= threshold <= 1.0:
        raise VerifierError(f'{str(path / CARD)!r} has no 0-1 operating point ("threshold")')
    return card


def export(model_path: Path, out: Path, precision: Precision) -> Path:
    """Write ``out/model.onnx`` (the logits of a pair), the tokenizer and the runtime's notes
    for the CrossEncoder at ``model_path``; return ``out`` (published whole)."""
    return publish(out, lambda staging: _export(model_path, staging, precision), META)


def _export(model_path: Path, out: Path, precision: Precision) -> None:
    try:
        from sentence_transformers import CrossEncoder
    except ImportError as exc:  # pragma: no cover - a dependency of vetcache
        raise VerifierError("exporting the verifier needs sentence-transformers") from exc
    try:
        model = CrossEncoder(str(model_path), device="cpu")
    except (OSError, ValueError) as exc:
        raise VerifierError(f"cannot load verifier {str(model_path)!r}: {exc}") from exc
    classifier: Any = model.model
    if int(getattr(classifier.config, "num_labels", 0)) != 1:
        raise VerifierError("a verifier has one output (num_labels=1)")
    classifier.eval()
    sample = model.tokenizer(["a cached prompt"], ["a new prompt"], return_tensors="pt")
    names = ("input_ids", "attention_mask", "token_type_ids")
    trace(_logits(classifier), {n: sample[n] for n in names}, out / GRAPH, "logit", precision)
    model.tokenizer.backend_tokenizer.save(str(out / "tokenizer.json"))
    meta = {
        "max_tokens": int(model.max_seq_length or 512),
        "pad_token": model.tokenizer.pad_token,
        "precision": precision,
    }
    (out / META).write_text(json.dumps(meta))


def _logits(classifier: Any) -> Any:
    """The classifier's one logit per pair, as a module the exporter traces."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).logits[:, 0]

    return Logits(classifier)


class VerifierModel:
    """A loaded verifier: ``scores`` pairs, says which model it is (``fingerprint``)."""

    def __init__(self, folder: Path, card: dict[str, Any], digest: str, threads: int) -> None:
        from tokenizers import Tokenizer

        meta = json.loads((folder / META).read_text())
        self.card = card
        """The model card (``vetcache-verifier.json``)."""
        self.threshold = float(card["threshold"])
        """The card's operating point: the score a pair needs by default."""
        self.precision: Precision = meta["precision"]
        self.fingerprint = f"verifier:{card['name']}:{digest[:12]}:onnx-{self.precision}"
        """Which model and export scored: kept with every verdict it took part in."""
        self._session = session(folder / GRAPH, threads)
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=int(meta["max_tokens"]))
        pad = meta["pad_token"]
        tokenizer.enable_padding(pad_id=tokenizer.token_to_id(pad), pad_token=pad)
        self._tokenizer = tokenizer

    def scores(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """The probability (0-1) that the answer cached for each pair's first prompt serves
        its second; 0 for a pair longer than the model's window. Synchronous (CPU-bound):
        call it off the event loop."""
        if not pairs:
            return []
        if self.precision == "int8" and len(pairs) > 1:
            # Dynamic quantization scales activations per run: a pair scored alone scores
            # the same under any traffic (as the embedder does, cache.onnx_embedder).
            return [score for pair in pairs for score in self._run([pair])]
        return self._run(pairs)

    def _run(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        encoded = self._tokenizer.encode_batch(list(pairs))
        feed = {
            "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
        }
        (logits,) = self._session.run(["logit"], feed)
        found = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))
        # A pair past the model's window was cut before it was read: the verifier vouches
        # only for what it read, so such a pair scores 0 (refused; a long prompt's
        # difference may sit in the cut tail).
        return [0.0 if e.overflowing else float(s) for e, s in zip(encoded, found, strict=True)]


def default_folder() -> Path:
    """Where ``vetcache train --default`` writes the default verifier and ``default`` finds it
    (``VETCACHE_VERIFIER_DIR``, else the user's cache)."""
    root = os.environ.get("VETCACHE_VERIFIER_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vetcache", "verifier"
    )
    return Path(root) / DEFAULT_MODEL


def resolve_folder(model: str | Path) -> Path:
    """The folder ``model`` names: ``default`` (built by ``vetcache train --default``; a
    ``VerifierError`` saying so until it is) or a folder path."""
    if str(model) != DEFAULT_MODEL:
        return Path(model)
    folder = default_folder()
    if not (folder / CARD).is_file():
        raise VerifierError(
            f"the default verifier is not built yet ({folder}): run `vetcache train --default` "
            "once (it trains from the pairs vetcache ships; minutes on a CPU)"
        )
    return folder


def load_scorer(
    path: str | Path,
    precision: Precision = "int8",
    directory: Path | None = None,
    threads: int = 1,
) -> VerifierModel:
    """The verifier in the folder at ``path``, exported to ONNX on first use into
    ``directory`` (default: ``cache.onnx_export.default_dir``) and loaded for scoring;
    ``VerifierError`` when the folder is not a verifier or cannot be exported."""
    folder = resolve_folder(path)
    card = read_card(folder)
    digest = _weights_digest(str(folder))
    name = hashlib.sha256(f"verifier:{card['name']}:{digest}".encode()).hexdigest()[:16]
    export_dir = (directory or default_dir()) / f"verifier-{name}-{precision}"
    if not (export_dir / META).is_file():
        export(folder, export_dir, precision)
    try:
        return VerifierModel(export_dir, card, digest, threads)
    except ImportError as exc:
        raise VerifierError("the verifier needs onnxruntime and tokenizers") from exc
