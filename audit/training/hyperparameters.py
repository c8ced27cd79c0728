"""Every default of ``vetcache train``, in one place: the options of the command and the
model card's ``hyperparameters`` are this model."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cache.embedder import BUNDLED_MODEL

DEFAULT_TARGET_FP = 0.03
"""FP share of served hits the operating point is chosen for, on the validation split."""
DEFAULT_FLOOR = 0.75
"""Similarity under which a pair would not be a candidate at all (the threshold the
verifier is meant to run under): such pairs are left out of the served hits."""


class Hyperparameters(BaseModel):
    """How the verifier is trained."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base: str = BUNDLED_MODEL
    """Weights it starts from: ``bundled:all-MiniLM-L6-v2`` or a folder of a Hugging Face
    (BERT-like) model; a sequence-classification head with one label is added."""
    layers: int | None = Field(default=6, ge=1)
    """Encoder layers kept (the first N; None: all)."""
    epochs: float = Field(default=1.0, gt=0)
    """Passes over the training split. One by default: an epoch of the shipped pairs (both
    orders, 6 layers) took ~10 min of 2 busy cores here, and the default verifier is built
    on install machines and in CI; more epochs is the first knob to try with more CPU."""
    lr: float = Field(default=1e-4, gt=0)
    """Peak learning rate (linear warm-up then decay)."""
    batch_size: int = Field(default=32, ge=1)
    """Pairs per step."""
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    """Share of the steps spent warming the learning rate up."""
    max_length: int = Field(default=256, ge=16)
    """Tokens read of a (cached, new) pair."""
    both_orders: bool = True
    """Train on (a, b) and (b, a) of each pair."""
    threads: int = Field(default=2, ge=1, le=64)
    """torch threads while training and scoring (the weights depend on it: fixed, not the
    machine's core count, so a run is reproducible)."""
    seed: int = 13
    """Seed of the splits, the head's initialization and the data order."""


EmbedderLoss = Literal["mnrl", "cosent", "online-contrastive"]
"""The contrastive losses ``vetcache train --embedder`` can fine-tune with
(``audit.training.embedder_trainer``)."""


class EmbedderHyperparameters(BaseModel):
    """How the embedder is fine-tuned (``vetcache train --embedder``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base: str = BUNDLED_MODEL
    """The sentence-transformers model it starts from (a name or folder; by default the
    bundled all-MiniLM-L6-v2, or the model in force to continue from it)."""
    loss: EmbedderLoss = "online-contrastive"
    """``mnrl``: MultipleNegativesRankingLoss on (anchor, positive, hard negative) triplets
    and in-batch negatives; ``cosent`` / ``online-contrastive``: on the labelled pairs.
    Chosen by measurement on the validation split (docs/performance.md: online contrastive
    had the largest margin and the lowest FP share there)."""
    epochs: float = Field(default=2.0, gt=0)
    """Passes over the training split (one at 2e-5 barely moved the margin: 0.007)."""
    lr: float = Field(default=1e-4, gt=0)
    """Peak learning rate (linear warm-up then decay)."""
    batch_size: int = Field(default=32, ge=2)
    """Rows per step (with ``mnrl`` also the in-batch negatives per anchor)."""
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    """Share of the steps spent warming the learning rate up."""
    max_length: int = Field(default=256, ge=16)
    """Tokens read of each prompt."""
    threads: int = Field(default=2, ge=1, le=64)
    """torch threads while training (fixed, so a run is reproducible)."""
    seed: int = 13
    """Seed of the splits and the data order."""
