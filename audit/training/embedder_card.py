"""The embedder's model card: ``vetcache-embedder.json`` in the folder ``vetcache train
--embedder`` writes (a sentence-transformers model the gateway loads as
``cache.embedding_model: DIR``).

It names the version the gateway will serve (the fingerprint of its ONNX int8 form, exported
when it was built), how it was made (base model and digest, loss and hyperparameters, the
data's digest, the command line, library versions), from what (counts per source, split and
cohort, as the verifier's card) and how it does against its base (margin, FP share and
recall per split and cohort at the operating threshold).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from audit.training.card import CREATED_BY, Counts
from audit.training.embedder_metrics import EmbedderMetrics

EMBEDDER_CARD_FILE = "vetcache-embedder.json"


class EmbedderCard(BaseModel):
    """What a fine-tuned embedder folder holds and how it was made."""

    model_config = ConfigDict(extra="ignore")

    name: str
    """Model name."""
    version: str
    """The fingerprint's weights digest (16 hex digits): the version's short name."""
    fingerprint: str
    """Fingerprint of the ONNX int8 form the gateway serves (``<dir name>:<dim>:<digest>:
    onnx-int8``): the version's identity, in every scope its entries are made in."""
    onnx_dir: str
    """Folder the ONNX int8 export was written under (the gateway's ``cache.onnx_dir``)."""
    base_model: str
    """The model it was fine-tuned from."""
    base_digest: str
    """SHA-256 of the base model's weights."""
    base_fingerprint: str
    """Fingerprint of the base model's ONNX int8 form (the version it is compared with)."""
    loss: str
    """The contrastive loss (``mnrl``, ``cosent``, ``online-contrastive``)."""
    hyperparameters: dict[str, Any]
    """``audit.training.hyperparameters.EmbedderHyperparameters`` as used."""
    training_rows: int
    """Rows the trainer read (triplets for ``mnrl``, pairs otherwise)."""
    threshold: float
    """Similarity threshold FP share and recall are measured at."""
    data_digest: str
    """SHA-256 of the pairs, labels and splits it was trained and measured on."""
    counts: Counts
    """Pairs per source, split, cohort and label."""
    metrics: dict[str, dict[str, EmbedderMetrics]]
    """Per split (``train`` is in sample; ``external`` for ``--test-pairs``): per cohort,
    the fine-tuned model's margin, FP share and recall."""
    base_metrics: dict[str, dict[str, EmbedderMetrics]]
    """The same for the base model."""
    command: list[str]
    """The command line that built it."""
    created_by: str = CREATED_BY
    """The tool that wrote it."""
    created_at: float
    """Unix time it was written."""
    libraries: dict[str, str]
    """Versions of Python, torch, transformers, sentence-transformers and vetcache."""


def write_embedder_card(folder: Path, card: EmbedderCard) -> None:
    """Write ``card`` into ``folder``."""
    path = folder / EMBEDDER_CARD_FILE
    path.write_text(card.model_dump_json(indent=2) + "\n", encoding="utf-8")
