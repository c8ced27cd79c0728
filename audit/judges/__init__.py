"""Judges behind one interface (``base.Judge``): ``contrast`` (offline rules), ``llm`` (a
rubric sent through litellm to any model), ``cross-encoder`` (a sentence-transformers
CrossEncoder of your own). ``build_judge`` makes the one the settings name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit.judges.base import Judge
from audit.judges.contrast import ContrastJudge
from audit.judges.cross_encoder import CrossEncoderJudge
from audit.judges.llm import LLMJudge

if TYPE_CHECKING:
    from audit.settings import AuditSettings


def build_judge(settings: AuditSettings) -> Judge:
    """The judge ``settings.judge`` names."""
    if settings.judge == "llm":
        return LLMJudge(settings.llm)
    if settings.judge == "cross-encoder":
        return CrossEncoderJudge(settings.cross_encoder)
    return ContrastJudge()


__all__ = ["ContrastJudge", "CrossEncoderJudge", "Judge", "LLMJudge", "build_judge"]
