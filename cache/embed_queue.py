"""The texts waiting for the embedding thread, with the deadlines of the lookups behind them.

One thread embeds, so a text waits for every text ahead of it. A lookup's text has a
deadline (its lookup budget); a text embedded for admission, after the answer was sent, or
offline has none. So:

- a lookup's text is refused at once (``Overloaded``, a shed lookup that fails open) when the
  texts ahead of it cannot be embedded before its deadline: the estimate is the lookups
  waiting, plus the one in flight, plus itself, times a moving average of the seconds one
  text takes;
- a text whose lookup was abandoned (its future cancelled), or whose deadline passed while it
  waited (or would pass before one text's time was up), is dropped, never embedded: dead
  work would delay every later lookup;
- lookups go first; a text without a deadline is never dropped nor shed, and goes first
  once it has waited ``promote_after_s`` (so admissions are not starved by steady lookups);
- texts that waited together run as one batch (the thread takes whatever is queued when it
  frees up; with no window, a text that finds it free runs at once), cut where the batch
  would end past the earliest deadline in it: the texts left wait for the next run, and are
  dropped if their deadline passes first. Until one text was timed, a lookup runs alone.

Hand-written rather than ``asyncio.PriorityQueue``: entries leave by cancellation and by
deadline, and the shed estimate needs the count of live lookups, which a heap does not keep.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cache.errors import Overloaded

if TYPE_CHECKING:  # cache.embedder imports this module
    from cache.embedder import Vector


@dataclass(slots=True)
class Job:
    """One text to embed and the future its caller awaits."""

    text: str
    future: asyncio.Future[Vector]
    deadline: float | None
    """Loop time by which the caller needs the vector (None: it waits as long as it takes)."""
    queued: float
    """Loop time it was queued."""
    done: bool = False
    """Its future is done (cancelled: its lookup was abandoned). Set on the loop, read by the
    embedding thread, which skips such a job."""

    def dead(self) -> bool:
        """Not worth embedding any more. Safe to call from the embedding thread: it reads a
        flag and the clock (the loop's clock is ``time.monotonic``, asyncio's default)."""
        return self.done or (self.deadline is not None and time.monotonic() > self.deadline)

    def mark_done(self, _future: asyncio.Future[Vector]) -> None:
        self.done = True


class EmbedQueue:
    """Lookups first, by arrival; texts without a deadline after them, or first once old."""

    def __init__(self, promote_after_s: float = 0.5, smoothing: float = 0.1) -> None:
        self.promote_after_s = promote_after_s
        self.smoothing = smoothing
        self.cost_s = 0.0
        """Moving average of the seconds one text takes (0 until one was embedded)."""
        self.dropped = 0
        """Texts dropped before they ran: abandoned, or past their deadline."""
        self.shed = 0
        """Lookups refused at the door."""
        self._lookups: deque[Job] = deque()
        self._others: deque[Job] = deque()
        self._waiting = 0  # lookups queued or in flight whose future is not done
        self._ready = asyncio.Event()

    def estimate(self) -> float:
        """Seconds until a lookup queued now would have its vector."""
        return (self._waiting + 1) * self.cost_s

    def put(self, text: str, deadline: float | None) -> asyncio.Future[Vector]:
        """Queue ``text``; ``Overloaded`` when it has a deadline it cannot make."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if deadline is not None and now + self.estimate() > deadline:
            self.shed += 1
            raise Overloaded(
                f"embedding queue: {self._waiting} lookups ahead, "
                f"{self.estimate() * 1000:.1f} ms estimated"
            )
        future: asyncio.Future[Vector] = loop.create_future()
        job = Job(text, future, deadline, now)
        future.add_done_callback(job.mark_done)
        if deadline is None:
            self._others.append(job)
        else:
            self._waiting += 1
            future.add_done_callback(self._settled)
            self._lookups.append(job)
        self._ready.set()
        return future

    def _settled(self, _future: asyncio.Future[Vector]) -> None:
        self._waiting -= 1

    def took(self, seconds: float, texts: int) -> None:
        """Record that ``texts`` texts took ``seconds`` of the embedding thread's time."""
        if texts == 0:
            return
        per_text = seconds / texts
        if self.cost_s == 0.0:
            self.cost_s = per_text
        else:
            self.cost_s += self.smoothing * (per_text - self.cost_s)

    async def take(self, max_batch: int, window: float) -> list[Job]:
        """The next jobs to embed (at least one): waits for the first, then up to ``window``
        seconds for more, up to ``max_batch``."""
        first = self._next()
        while first is None:
            self._ready.clear()
            await self._ready.wait()
            first = self._next()
        batch = [first]
        loop = asyncio.get_running_loop()
        until = loop.time() + window
        while len(batch) < max_batch and self._room(batch, loop.time()):
            job = self._next()
            if job is not None:
                batch.append(job)
                continue
            remaining = until - loop.time()
            if remaining <= 0:
                break
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), remaining)
            except TimeoutError:
                break
        return batch

    def _room(self, batch: list[Job], now: float) -> bool:
        """Whether one more text still lets ``batch`` end before its earliest deadline."""
        deadlines = [job.deadline for job in batch if job.deadline is not None]
        if not deadlines:
            return True
        return self.cost_s > 0 and now + (len(batch) + 1) * self.cost_s <= min(deadlines)

    def _next(self) -> Job | None:
        """The next job worth running, dropping dead ones."""
        now = asyncio.get_running_loop().time()
        if self._others and now - self._others[0].queued >= self.promote_after_s:
            return self._others.popleft()
        while self._lookups:
            job = self._lookups.popleft()
            if job.future.done():  # abandoned: its lookup was cancelled
                self.dropped += 1
                continue
            if job.deadline is not None and now + self.cost_s > job.deadline:
                self.dropped += 1  # past its deadline, or would be by the time it is embedded
                job.future.set_exception(TimeoutError("the lookup's deadline passed in queue"))
                continue
            return job
        while self._others:
            job = self._others.popleft()
            if not job.future.done():  # cancelled callers (a closing admission) are skipped
                return job
        return None

    def close(self, error: Exception) -> None:
        """Fail every job still queued with ``error`` (their callers are waiting on them)."""
        for queue in (self._lookups, self._others):
            while queue:
                job = queue.popleft()
                if not job.future.done():
                    job.future.set_exception(error)
