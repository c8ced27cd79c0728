"""``VerifierCheck``: the learned verifier on the hit path, the last check the serving policy
asks (after ``language`` and ``contrast``).

A pair model (``cache.verifier_model``) reads the cached prompt and the new prompt together
and scores whether the cached answer serves the new prompt. It runs only in its band: a
semantic candidate at or above the threshold in force (the floor; the policy asks no check
below it) and under ``bar``, where similarity alone is trusted; exact repeats are never
verified. A candidate scoring under ``min_score`` (default: the model card's operating point)
is refused (``verifier``); in ``shadow`` mode it is scored and counted as would-refuse, never
refused. The model runs on its own one-thread executor, off the event loop, one pair at a
time; a verification slower than ``timeout_ms`` (or failing) refuses the candidate in
``serve`` mode: the request goes upstream, and it is counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal, Protocol

from cache.policy import AGREE, Assessment, Check
from cache.verifier_settings import VerifierSettings

log = logging.getLogger("vetcache.cache")

Verdict = Literal["agree", "refuse", "timeout", "error"]


class Scorer(Protocol):
    """What the check needs of a verifier model (``cache.verifier_model.VerifierModel``)."""

    fingerprint: str
    threshold: float

    def scores(self, pairs: Sequence[tuple[str, str]]) -> list[float]: ...


class VerifierCheck(Check):
    """Refuses a semantic candidate in the band the verifier does not agree with."""

    name = "verifier"

    def __init__(
        self,
        settings: VerifierSettings,
        directory: Path | None = None,
        scorer: Scorer | None = None,
    ) -> None:
        """``directory``: where ONNX exports are kept; ``scorer`` replaces the model
        ``settings.model`` names (tests pass a fake)."""
        self.settings = settings
        self.directory = directory
        self.scorer = scorer
        self.min_score = settings.min_score if settings.min_score is not None else 0.5
        self._executor: ThreadPoolExecutor | None = None

    async def open(self) -> None:
        """Load (exporting on first use) the model; ``VerifierError`` when it is not one."""
        if self.scorer is None:
            from cache.verifier_model import load_scorer

            s = self.settings
            self.scorer = await asyncio.to_thread(
                load_scorer, s.model, s.precision, self.directory, s.threads
            )
        if self.settings.min_score is None:
            self.min_score = self.scorer.threshold
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="vetcache-verifier")
        log.info("verifier %s (%s mode)", self.scorer.fingerprint, self.settings.mode)

    async def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def in_band(self, similarity: float) -> bool:
        """Whether a candidate this similar is verified (under ``bar``; the floor is the
        policy's threshold)."""
        return similarity < self.settings.bar

    async def refuses(self, cached_prompt: str, new_prompt: str, similarity: float) -> bool:
        return (await self.assess(cached_prompt, new_prompt, similarity)).refused

    async def assess(self, cached_prompt: str, new_prompt: str, similarity: float) -> Assessment:
        if not self.in_band(similarity):
            return AGREE
        started = time.perf_counter()
        verdict, score = await self._verify(cached_prompt, new_prompt)
        waited = time.perf_counter() - started
        self.observer.verified(verdict, self.settings.mode, score, waited)
        refused = verdict != "agree" and self.settings.mode == "serve"
        assert self.scorer is not None  # opened
        return Assessment(refused=refused, score=score, scorer=self.scorer.fingerprint)

    async def _verify(self, cached_prompt: str, new_prompt: str) -> tuple[Verdict, float | None]:
        """The verdict on one pair and its score, within ``timeout_ms``."""
        if self.scorer is None or self._executor is None:
            raise RuntimeError("the verifier was not opened")
        loop = asyncio.get_running_loop()
        pairs = [(cached_prompt, new_prompt)]
        limit = self.settings.timeout_ms / 1000.0
        started = loop.time()
        work = loop.run_in_executor(self._executor, self.scorer.scores, pairs)
        try:
            # A pair still queued when time runs out is cancelled with its future; one
            # already running finishes in the background and its score is dropped.
            (score,) = await asyncio.wait_for(work, limit)
        except TimeoutError:
            return "timeout", None
        except Exception as exc:  # noqa: BLE001 - a model boundary: any failure is an error verdict
            log.warning("verifier failed: %s", type(exc).__name__)
            return "error", None
        if loop.time() - started > limit:
            # The score came in late but before a busy loop ran the timer: the request
            # waited longer than the limit all the same.
            return "timeout", None
        return ("agree" if score >= self.min_score else "refuse"), float(score)


class FakeScorer:
    """A scorer for tests: a fixed score per new prompt (``default`` for others), optionally
    slow or failing."""

    def __init__(
        self,
        scores: dict[str, float] | None = None,
        default: float = 1.0,
        threshold: float = 0.5,
        delay_s: float = 0.0,
        fails: bool = False,
    ) -> None:
        self.table = dict(scores or {})
        self.default = default
        self.threshold = threshold
        self.delay_s = delay_s
        self.fails = fails
        self.fingerprint = "verifier:fake:000000000000:none"
        self.seen: list[tuple[str, str]] = []
        """Every pair scored, in order."""

    def scores(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        self.seen.extend(pairs)
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fails:
            raise ValueError("the fake scorer fails on demand")
        return [self.table.get(new, self.default) for _, new in pairs]
