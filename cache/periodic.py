"""A background loop that runs a step every so often until it is stopped: the one way the
project keeps something fresh (live thresholds, spilled audit jobs, metric gauges, the
threshold autopilot)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

STOP_WAIT_S = 5.0
"""How long ``stop`` waits for a step in progress to end."""


class Periodic:
    """``step()`` now (or after one interval with ``wait_first``), then every ``interval_s``
    seconds, in a task of its own, until ``stop()``.

    Stopped by a flag as well as by ``cancel()``: redis-py (8.1, seen here) can swallow a
    task's cancellation mid-command, and a loop that relied on ``cancel()`` alone then ran
    on and held up the app's shutdown. A step that raises ends the loop (steps handle the
    failures they expect themselves)."""

    def __init__(
        self,
        name: str,
        step: Callable[[], Awaitable[object]],
        interval_s: float,
        *,
        wait_first: bool = False,
    ) -> None:
        self.name = name
        self.step = step
        self.interval_s = interval_s
        self.wait_first = wait_first
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the loop on the running event loop."""
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._forever(), name=self.name)

    async def _forever(self) -> None:
        if self.wait_first:
            await self._pause()
        while not self._stop.is_set():
            await self.step()
            await self._pause()

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), self.interval_s)

    @property
    def stopping(self) -> bool:
        """Whether ``stop`` was called."""
        return self._stop.is_set()

    async def stop(self) -> None:
        """End the loop (a step in progress gets ``STOP_WAIT_S`` to finish)."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=STOP_WAIT_S)
            self._task = None
