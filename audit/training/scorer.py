"""What the gate and the trainer need of a verifier: scores for (cached, new) pairs.

``Scorer`` is the whole interface; ``CrossEncoderScorer`` runs a verifier folder on torch
(the reference). The hit path runs the same folder on ONNX Runtime (``cache.verifier_model``)
and satisfies the same protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from audit.errors import InputError

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder

PREDICT_BATCH = 64


class Scorer(Protocol):
    """A verifier: P(the answer cached for ``text_a`` serves ``text_b``) for each pair."""

    def scores(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """One 0-1 score per (cached prompt, new prompt) pair."""
        ...


class CrossEncoderScorer:
    """A sentence-transformers CrossEncoder (sigmoid of its one logit) on torch, CPU."""

    def __init__(self, model: CrossEncoder) -> None:
        self.model = model

    def scores(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        if not pairs:
            return []
        found = self.model.predict(list(pairs), batch_size=PREDICT_BATCH, show_progress_bar=False)
        return [float(value) for value in found]


def load_torch_scorer(folder: Path) -> CrossEncoderScorer:
    """The verifier saved in ``folder``, or ``InputError`` when it cannot be loaded."""
    from sentence_transformers import CrossEncoder

    if not folder.is_dir():
        raise InputError([f"{folder}: no such folder"])
    try:
        model = CrossEncoder(str(folder), local_files_only=True, device="cpu")
    except (OSError, ValueError) as exc:
        raise InputError([f"{folder}: cannot load a verifier: {exc}"]) from None
    return CrossEncoderScorer(model)
