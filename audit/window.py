"""The false-positive rate per namespace over a sliding window of recent verdicts, kept
current cheaply for the exported gauges."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from audit.schema import Verdict
from audit.stats import FPBreakdown, FPRate, fp_breakdown, fp_rate, serving_verdicts

Since = Callable[[float], Awaitable[list[Verdict]]]
"""Verdicts recorded at or after a time, newest first (``Auditor.verdicts_since``)."""


class VerdictWindow:
    """Verdicts of the last ``window_s`` seconds, fetched incrementally: each refresh asks
    only for verdicts newer than the last it saw (verdicts never change; a review is a new
    verdict), so refreshing costs the new verdicts, not the window."""

    SLACK_S = 5.0
    """Verdicts written by other processes with a slightly older clock are still seen."""

    def __init__(self, window_s: int) -> None:
        self.window_s = window_s
        self._verdicts: dict[str, Verdict] = {}
        self._newest = 0.0

    async def refresh(self, verdicts_since: Since, now: float | None = None) -> dict[str, FPRate]:
        """FP rate per namespace over the window, after taking in new verdicts."""
        now = time.time() if now is None else now
        since = max(now - self.window_s, self._newest - self.SLACK_S)
        for verdict in serving_verdicts(await verdicts_since(since)):
            self._verdicts[verdict.id] = verdict
            self._newest = max(self._newest, verdict.created_at)
        return self.held(now)

    def held(self, now: float | None = None) -> dict[str, FPRate]:
        """FP rate per namespace over the window from the verdicts already fetched, without
        asking for new ones (while the ledger is unreachable, old verdicts still age out)."""
        now = time.time() if now is None else now
        start = now - self.window_s
        self._verdicts = {i: v for i, v in self._verdicts.items() if v.created_at >= start}
        by_namespace: dict[str, list[Verdict]] = {}
        for verdict in self._verdicts.values():
            by_namespace.setdefault(verdict.job.namespace, []).append(verdict)
        return {namespace: fp_rate(found) for namespace, found in by_namespace.items()}

    def breakdown(self) -> FPBreakdown:
        """The window's verdicts (as of the last refresh) cut by cohort and shadow mode."""
        return fp_breakdown(list(self._verdicts.values()), self.window_s)
