"""``VerifierSettings`` (``cache.verifier`` in the config): the learned pair model that must
agree before a semantic candidate in its band is served.

The band: a semantic candidate at or above the threshold in force (the similarity floor) and
below ``bar`` is served only when the verifier's score reaches ``min_score``; at or above
``bar`` similarity alone is trusted. Exact repeats are never verified. The model is a folder
``vetcache train`` wrote (a sentence-transformers CrossEncoder and its model card,
``vetcache-verifier.json``, which holds the operating point chosen on its validation split).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

VerifierMode = Literal["serve", "shadow"]
"""``serve``: a candidate the verifier rejects is refused (``verifier``); ``shadow``: it is
scored and counted (would-refuse), never refused."""


class VerifierSettings(BaseModel):
    """Which verifier, where it runs, and what it must say."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    """Folder of a verifier ``vetcache train`` built (CrossEncoder weights, tokenizer, card)."""
    mode: VerifierMode = "serve"
    """``serve`` refuses what the verifier rejects; ``shadow`` only measures it."""
    bar: float = Field(default=1.0, ge=-1.0, le=1.0)
    """Similarity at or above which a semantic candidate is not verified (1.0: every semantic
    candidate is)."""
    min_score: float | None = Field(default=None, ge=0.0, le=1.0)
    """Score (0-1) a candidate needs; None: the operating point in the model's card."""
    timeout_ms: float = Field(default=20.0, gt=0)
    """A verification slower than this refuses the candidate (the request goes upstream)."""
    precision: Literal["fp32", "int8"] = "int8"
    """ONNX Runtime precision of the exported model (int8: per-channel dynamic quantization)."""
    threads: int = Field(default=1, ge=1, le=64)
    """Threads one verification may use."""
