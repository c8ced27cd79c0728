"""The one background loop (``cache.periodic``): steps on its interval, stops on a flag
even when a step swallows its cancellation (as redis-py can mid-command)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time

from cache.periodic import Periodic


async def test_steps_now_and_on_its_interval_until_stopped() -> None:
    times: list[float] = []

    async def step() -> None:
        times.append(time.monotonic())

    loop = Periodic("test", step, 0.02)
    loop.start()
    await asyncio.sleep(0.25)
    await loop.stop()
    count = len(times)
    assert 3 <= count <= 14  # about 13 on an idle machine; never more than 0.25 / 0.02 + 1
    assert all(b - a >= 0.015 for a, b in itertools.pairwise(times))  # on its interval
    await asyncio.sleep(0.1)
    assert len(times) == count  # stopped for good


async def test_wait_first_steps_only_after_one_interval() -> None:
    steps: list[int] = []

    async def step() -> None:
        steps.append(1)

    loop = Periodic("test", step, 0.2, wait_first=True)
    loop.start()
    await asyncio.sleep(0.05)
    assert steps == []
    await loop.stop()


async def test_stop_ends_a_loop_whose_step_swallows_cancellation() -> None:
    steps: list[int] = []

    async def stubborn() -> None:
        steps.append(1)
        with contextlib.suppress(asyncio.CancelledError):  # as redis-py 8.1 did mid-command
            await asyncio.sleep(0.05)

    loop = Periodic("test", stubborn, 0.01)
    loop.start()
    await asyncio.sleep(0.03)
    started = time.monotonic()
    await loop.stop()
    assert time.monotonic() - started < 1.0  # did not wait out the 5 s bound
    assert loop.stopping
    count = len(steps)
    await asyncio.sleep(0.1)
    assert len(steps) == count
