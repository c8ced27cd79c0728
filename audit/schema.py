"""The audit path's boundary types: what a judge is asked, and what it answers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

VerdictKind = Literal["correct", "false_positive", "uncertain", "error"]


class AuditJob(BaseModel):
    """One served hit (or near-miss) to vet: the new prompt against the cached pair."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    """Unique per job; a verdict is recorded once per job id."""
    request_id: str
    """The request that was answered from the cache."""
    entry_id: str
    """The cache entry that answered it."""
    new_prompt: str
    """What the client asked."""
    cached_prompt: str
    """What the cached answer was produced for."""
    cached_answer: str
    """The answer that was served."""
    similarity: float = Field(ge=-1.0, le=1.0)
    """Cosine similarity of the two prompts."""
    threshold: float
    """Threshold in force when it was served."""
    namespace: str
    """Namespace of the request."""
    model: str
    """Model alias."""


class Judgement(BaseModel):
    """A judge's answer for one job."""

    model_config = ConfigDict(frozen=True)

    verdict: VerdictKind
    """``error`` when the judge could not decide (never counted as a false positive)."""
    score: float | None = Field(default=None, ge=0.0, le=1.0)
    """How fully the cached answer serves the new prompt, 0-1 (None on error)."""
    reason: str
    """One line on why."""
    judge: str
    """Judge name and version, e.g. ``contrast/1``."""
