"""What the gate and the trainer need of a verifier: scores for (cached, new) pairs.

``Scorer`` is the whole interface; ``CrossEncoderScorer`` runs a verifier folder on torch
(the reference); ``load_onnx_scorer`` runs it as the hit path does (``cache.verifier_model``,
ONNX Runtime int8): what ``vetcache train`` and the gate measure.
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


def load_onnx_scorer(folder: Path) -> Scorer:
    """The verifier in ``folder`` as the hit path runs it (ONNX Runtime, int8, exported once
    into the ONNX cache), or ``InputError`` when it cannot be loaded."""
    from cache.errors import VerifierError
    from cache.verifier_model import load_scorer

    try:
        return load_scorer(folder)
    except VerifierError as exc:
        raise InputError([f"{folder}: {exc}"]) from None
