"""Identical misses in flight share one upstream call.

The first request to miss on an exact key leads: it asks the upstream and lands the answer
for the others, who follow and are answered from it (JSON or replayed as a stream). A
leader that fails, or a stream broken off, lands nothing: each follower then asks the
upstream itself. ``Flight`` is the one protocol, for JSON and streams alike::

    flight = flights.join(key.exact)
    if not flight.leads:
        shared = await flight.follow()          # None: the leader failed
    with flight:                                # leader: lands None unless it landed
        ...
        flight.land(completion)
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

Completion = dict[str, Any]
"""An OpenAI chat completion (JSON object)."""


class LeaderFailed(Exception):
    """The leader got no complete answer (internal: followers see ``follow()`` -> None)."""


class Flight:
    """One upstream call, as its leader or one of its followers sees it."""

    def __init__(
        self,
        table: dict[str, asyncio.Future[Completion]] | None,
        key: str,
        future: asyncio.Future[Completion] | None,
        *,
        leads: bool,
    ) -> None:
        self._table = table
        self._key = key
        self._future = future
        self.leads = leads
        """Whether this request asks the upstream (else it follows the leader)."""

    @classmethod
    def alone(cls) -> Flight:
        """A call nobody follows (no cache key, or a follower whose leader failed)."""
        return cls(None, "", None, leads=True)

    async def follow(self) -> Completion | None:
        """The leader's answer; None when it failed."""
        assert self._future is not None, "a leader has nobody to follow"
        try:
            return await asyncio.shield(self._future)
        except LeaderFailed:
            return None

    def land(self, completion: Completion | None) -> None:
        """Leader: hand ``completion`` (None: failed) to the followers and free the key.
        Only the first landing counts."""
        if not self.leads or self._future is None:
            return
        if self._table is not None and self._table.get(self._key) is self._future:
            del self._table[self._key]
        if not self._future.done():
            if completion is None:
                self._future.set_exception(LeaderFailed())
            else:
                self._future.set_result(completion)

    def __enter__(self) -> Flight:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.land(None)  # a no-op when the answer has landed


class Flights:
    """The calls in flight, by exact cache key (one table per gateway process)."""

    def __init__(self) -> None:
        self._inflight: dict[str, asyncio.Future[Completion]] = {}

    def join(self, key: str) -> Flight:
        """Follow the call in flight for ``key``, or lead a new one."""
        future = self._inflight.get(key)
        if future is not None:
            return Flight(self._inflight, key, future, leads=False)
        future = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda f: f.cancelled() or f.exception())  # no "never retrieved"
        self._inflight[key] = future
        return Flight(self._inflight, key, future, leads=True)
