"""Where the cache reports what it spends and what fails; the gateway's metrics listen.

``cache`` (and ``audit``, which extends it) needs no metrics library: it calls an observer,
and the default one does nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

Stage = str
"""``lookup`` (the whole lookup, as long as the request waited for it), ``exact_lookup``,
``embed``, ``vector_search`` (its steps), ``upstream``, ``admit``, ``judge``."""


class Observer:
    """Hooks for timings and failures. Subclass and override; every hook is cheap to call."""

    def stage(self, stage: Stage, seconds: float) -> None:
        """One stage of a request (or of an audit) took ``seconds``."""

    def cache_error(self, kind: str) -> None:
        """The cache failed open: ``store``, ``embedder``, ``timeout`` (over the lookup
        budget) or ``shed`` (a lookup refused before it ran: it could not make the budget)."""

    def verified(self, verdict: str, mode: str, score: float | None, seconds: float) -> None:
        """The learned verifier's word on one candidate (``cache.verifier``): ``agree``,
        ``refuse`` (in ``shadow`` mode: would refuse), ``timeout`` or ``error``; its score
        (None when it gave none) and how long the candidate waited for it."""

    @contextmanager
    def timed(self, stage: Stage) -> Iterator[None]:
        """Time the block as ``stage`` (also when it raises)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.stage(stage, time.perf_counter() - started)


NULL_OBSERVER = Observer()
