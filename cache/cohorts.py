"""The cohorts a prompt belongs to by itself (language, length): one rule for the audit
statistics (``audit.stats.cohort``) and the rollout's shadow comparison (``cache.rollout``).
Each takes values from a small fixed set, so each can be a metric label or a counter name."""

from __future__ import annotations

from cache import language

SHORT_CHARS = 40
LONG_CHARS = 160


def length_bucket(text: str) -> str:
    """``short`` (under 40 characters), ``medium`` (under 160) or ``long``."""
    length = len(text)
    return "short" if length < SHORT_CHARS else "medium" if length < LONG_CHARS else "long"


def prompt_cohorts(text: str) -> dict[str, str]:
    """``length`` and ``language`` (``cache.language.label``) of a prompt."""
    return {"length": length_bucket(text), "language": language.label(language.detect(text))}
