"""The ``cross-encoder`` judge: a sentence-transformers CrossEncoder scores the new prompt
against the cached prompt and/or the cached answer.

No cross-encoder weights are on PyPI, so none ships with vetcache: point ``model`` at your
own (a hub name where the hub is reachable, or a local folder). sentence-transformers is
imported only when this judge is used.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from audit.judges.base import Judge, verdict_for
from audit.schema import AuditJob, Judgement


class CrossEncoderSettings(BaseModel):
    """Which cross-encoder, on which pairs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = "cross-encoder/stsb-distilroberta-base"
    """sentence-transformers CrossEncoder name or local path."""
    pairs: Literal["prompts", "answer", "both"] = "prompts"
    """Score (new prompt, cached prompt), (new prompt, cached answer), or both (the lower
    score counts)."""


class CrossEncoderJudge(Judge):
    """Scores pairs with a cross-encoder; the score (0-1) decides the verdict."""

    def __init__(self, settings: CrossEncoderSettings) -> None:
        self.settings = settings
        self.name = f"cross-encoder/1:{settings.model}"
        self._model: Any = None
        self._lock = asyncio.Lock()

    def _load(self) -> Any:
        try:
            from sentence_transformers import CrossEncoder
        except ImportError as exc:  # pragma: no cover - a dependency of vetcache
            raise RuntimeError(
                "the cross-encoder judge needs sentence-transformers "
                "(pip install sentence-transformers)"
            ) from exc
        return CrossEncoder(self.settings.model, device="cpu")

    def _score(self, job: AuditJob) -> float:
        pairs = []
        if self.settings.pairs in ("prompts", "both"):
            pairs.append((job.new_prompt, job.cached_prompt))
        if self.settings.pairs in ("answer", "both"):
            pairs.append((job.new_prompt, job.cached_answer))
        raw = [float(s) for s in self._model.predict(pairs, show_progress_bar=False)]
        # Models that end in a sigmoid give 0-1 already; raw logits are squashed.
        scores = [s if 0.0 <= s <= 1.0 else 1.0 / (1.0 + math.exp(-s)) for s in raw]
        return min(scores)

    async def judge(self, job: AuditJob) -> Judgement:
        try:
            async with self._lock:
                if self._model is None:
                    self._model = await asyncio.to_thread(self._load)
                score = await asyncio.to_thread(self._score, job)
        except Exception as exc:  # noqa: BLE001 - any failure of the model is an error verdict
            return Judgement(
                verdict="error",
                reason=f"cross-encoder failed: {type(exc).__name__}",
                judge=self.name,
            )
        return Judgement(
            verdict=verdict_for(score),
            score=score,
            reason=f"cross-encoder score {score:.3f} on {self.settings.pairs}",
            judge=self.name,
        )
