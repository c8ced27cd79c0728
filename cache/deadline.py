"""A deadline that holds even when the awaited code swallows its cancellation.

``asyncio.timeout`` only ends a block by cancelling it, and redis-py can swallow that
cancellation (its connection handling shields some steps): the block then runs on with no
deadline at all (1,000 ``RedisStore.get_exact`` calls under a tiny ``asyncio.timeout``: 39 to
146 of them ran past it without a ``TimeoutError``). ``Deadlines.run`` does not depend on
cancellation: it runs the work as a task and stops *waiting* at the deadline. The abandoned
task is not cancelled either: a redis-py command cancelled in flight drops its connection,
and on a loaded gateway (most lookups over budget) the reconnects cost more than the lookups
they ended. It ends by itself: its own deadline checks stop it at its next step, and a Redis
call ends with its answer or its socket timeout. Its result or exception is retrieved when it
ends (no "exception was never retrieved" warnings), and while too many are still running new
work is refused (``Overloaded``) instead of piling up on a stuck store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from cache.errors import Overloaded

T = TypeVar("T")


class Deadlines:
    """Runs coroutines against a deadline on the running loop's clock."""

    def __init__(self, max_abandoned: int = 128) -> None:
        """``max_abandoned``: abandoned tasks allowed to run on at once; beyond it ``run``
        sheds new work."""
        self.max_abandoned = max_abandoned
        self._abandoned: set[asyncio.Task[Any]] = set()

    @property
    def abandoned(self) -> int:
        """Abandoned tasks still running."""
        return len(self._abandoned)

    async def run(self, work: Coroutine[Any, Any, T], deadline: float) -> T:
        """``work``'s result if it ends by ``deadline`` (``loop.time()``); ``TimeoutError``
        at the deadline otherwise, and ``work`` is left to end by itself.
        ``Overloaded`` (and ``work`` never started) while too many are abandoned."""
        if len(self._abandoned) >= self.max_abandoned:
            work.close()
            raise Overloaded(f"{len(self._abandoned)} abandoned lookups are still running")
        task = asyncio.ensure_future(work)
        timeout = max(0.0, deadline - asyncio.get_running_loop().time())
        try:
            await asyncio.wait((task,), timeout=timeout)
        finally:  # also when the caller itself is cancelled while waiting
            if not task.done():
                self._abandon(task)
        if not task.done():
            raise TimeoutError
        return task.result()

    def _abandon(self, task: asyncio.Task[Any]) -> None:
        self._abandoned.add(task)
        task.add_done_callback(self._reap)

    def _reap(self, task: asyncio.Task[Any]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: nobody waits for an abandoned task's failure

    async def drain(self, wait_s: float) -> None:
        """Wait up to ``wait_s`` seconds for the abandoned tasks to end (at close)."""
        if self._abandoned:
            await asyncio.wait(set(self._abandoned), timeout=wait_s)
