"""The serving policy's checks that the settings turn on, cheapest first."""

from __future__ import annotations

from pathlib import Path

from cache.contrast import ContrastCheck
from cache.language_check import LanguageCheck
from cache.policy import Check
from cache.settings import CacheSettings


def default_checks(settings: CacheSettings) -> list[Check]:
    """The checks the settings turn on: the language check (cheapest, first), the contrast
    guard, the learned verifier (dearest, last; its model loads in ``open``)."""
    checks: list[Check] = []
    if settings.embedder_languages:
        checks.append(LanguageCheck(settings.embedder_languages))
    if settings.contrast_guard:
        checks.append(ContrastCheck())
    if settings.verifier is not None:
        from cache.verifier import VerifierCheck

        onnx_dir = Path(settings.onnx_dir) if settings.onnx_dir else None
        checks.append(VerifierCheck(settings.verifier, onnx_dir))
    return checks
