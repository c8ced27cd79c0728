"""The cache's incident log: a few lines an operator can read, however many lookups fail.

An incident opens with one warning at the first failure, says so once more if it gets worse
(a slow cache, ``timeout`` or ``shed``, that becomes an unavailable one, ``store`` or
``embedder``: the remedy differs), and closes with one line at the first successful lookup
after ``quiet_s`` seconds without a failure, with what failed meanwhile. Closing at the first
success instead made a loaded cache (a timeout now and then between hits) log a
warning/recovered pair per request: 255 pairs in 6 minutes.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

log = logging.getLogger("vetcache.cache")

SLOW = frozenset({"timeout", "shed"})
"""Kinds of failure where the cache works, too slowly; the others mean it is unavailable."""


class Incidents:
    """Opens, escalates and closes incidents from a stream of failures and successes."""

    def __init__(
        self,
        budget_ms: float,
        quiet_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budget_ms = budget_ms
        self.quiet_s = quiet_s
        self.clock = clock
        self.failures: Counter[str] = Counter()
        """Failures of the open incident, by kind (empty when none is open)."""
        self._opened = 0.0
        self._last_failure = 0.0
        self._down = False

    @property
    def open(self) -> bool:
        return bool(self.failures)

    def failed(self, kind: str, exc: BaseException) -> None:
        """One failure of ``kind`` (``timeout``, ``shed``, ``store``, ``embedder``)."""
        now = self.clock()
        first = not self.failures
        self.failures[kind] += 1
        self._last_failure = now
        if first:
            self._opened = now
        if kind in SLOW:
            if first:
                self._warn_slow(kind, exc)
            return
        if first or not self._down:
            self._down = True
            was = "" if first else " (it was over its budget before)"
            log.warning("cache unavailable, serving from upstream: %s%s", type(exc).__name__, was)

    def _warn_slow(self, kind: str, exc: BaseException) -> None:
        if kind == "shed":
            log.warning(
                "cache overloaded, lookups shed to keep the %.0f ms budget, serving from "
                "upstream: %s",
                self.budget_ms,
                exc,
            )
        else:  # slow, not down: say so (lookup_budget_ms may be too tight)
            log.warning(
                "cache lookup over its %.0f ms budget, serving from upstream", self.budget_ms
            )

    def succeeded(self) -> None:
        """A lookup worked: closes the incident once no failure came for ``quiet_s``."""
        if not self.failures:
            return
        now = self.clock()
        if now - self._last_failure < self.quiet_s:
            return
        counts = ", ".join(f"{kind} {n}" for kind, n in sorted(self.failures.items()))
        log.info(
            "cache recovered after %.1f s: %d failures (%s)",
            self._last_failure - self._opened,
            sum(self.failures.values()),
            counts,
        )
        self.failures.clear()
        self._down = False
