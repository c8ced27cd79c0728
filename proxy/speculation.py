"""Speculative upstream calls (``cache.speculate``, ``cache.speculative_namespaces``).

A miss pays its whole lookup before the upstream call starts: exact layer, embedding, vector
search. Speculation starts the upstream call as soon as the exact layer misses, concurrently
with the embedding and the search: a semantic hit cancels it, a miss answers from it. A miss
then costs about the upstream's own latency.

- The cost: a cancelled call may still be billed for its prompt (the provider has read it)
  and for what it generated before the cancel reached it. Counted as
  ``vetcache_speculative_calls_total{outcome="cancelled"}`` (``used``: a miss answered from
  it), so the price of the saved milliseconds is visible.
- Identical misses still share one call: the speculating request leads the exact key's
  flight (``proxy.flights``). When another request already leads it, nothing is started and
  the request follows that call as before.
- Nothing is started without a lookup (``Cache-Control: no-cache``, a bypass), nor for an
  exact hit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter

from proxy.flights import Flight, Flights

C = TypeVar("C")


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a failed task's exception seen: a discarded call's error is nobody's."""
    if not task.cancelled():
        task.exception()


class Call(Generic[C]):
    """An upstream call running as a task of its own. ``discard`` releases what it returned
    when nobody will use it (a stream's open connection)."""

    def __init__(
        self, call: Coroutine[Any, Any, C], discard: Callable[[C], Awaitable[None]]
    ) -> None:
        self._task = asyncio.create_task(call, name="vetcache-speculative-call")
        self._task.add_done_callback(_retrieve)
        self._discard = discard
        self._cleanup: asyncio.Task[None] | None = None

    async def result(self) -> C:
        """What the call returned (or its error)."""
        return await self._task

    def cancel(self) -> None:
        """Stop the call, or release what it already returned, without waiting for either."""
        if not self._task.done():
            self._task.cancel()
        elif not self._task.cancelled() and self._task.exception() is None:
            self._cleanup = asyncio.create_task(self._release(self._task.result()))

    async def _release(self, result: C) -> None:
        await self._discard(result)


class SpeculativeCalls:
    """``vetcache_speculative_calls_total{namespace,outcome}``: used or cancelled."""

    def __init__(self, registry: CollectorRegistry, namespace: Callable[[str, str], str]) -> None:
        self.counter = Counter(
            "vetcache_speculative_calls_total",
            "Upstream calls started at the exact layer's miss (cache.speculate): used (the "
            "lookup missed) or cancelled (a semantic hit answered; the call may be billed).",
            ["namespace", "outcome"],
            registry=registry,
        )
        self._namespace = namespace

    def count(self, namespace: str, tenant: str, outcome: str) -> None:
        self.counter.labels(self._namespace(namespace, tenant), outcome).inc()


class Speculation:
    """One request's speculation: at most one call, started when the exact layer misses."""

    def __init__(self, flights: Flights, start: Callable[[], Call[Any]]) -> None:
        self._flights = flights
        self._start = start
        self.flight: Flight | None = None
        """The exact key's flight this request leads, once a call started."""
        self.call: Call[Any] | None = None
        """The call started (None: none, or another request leads this key's call)."""
        self._open = True

    def begin(self, exact: str) -> None:
        """The exact layer missed ``exact``: start the call, unless one is in flight for it
        (the request will follow that one), this request started one already, or its
        lookup is over (``close``)."""
        if self.call is not None or not self._open:
            return
        flight = self._flights.join(exact)
        if flight.leads:
            self.flight, self.call = flight, self._start()

    def close(self) -> None:
        """The lookup is over: a lookup abandoned at its deadline whose exact layer answers
        later must not start a call nobody would use (nor lead a flight nobody lands)."""
        self._open = False

    def drop(self) -> bool:
        """Nobody will use the call (a hit, or the request failed): cancel it and free its
        flight, whose followers then ask on their own. Whether a call was running."""
        if self.call is None or self.flight is None:
            return False
        self.call.cancel()
        self.flight.land(None)
        self.call = self.flight = None
        return True
