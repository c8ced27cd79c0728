"""Identical misses in flight share one upstream call: the one coalescing protocol that
JSON answers and streams both use (``proxy.flights``)."""

from __future__ import annotations

import asyncio

from proxy.flights import Flight, Flights

ANSWER = {"id": "c1", "choices": []}


async def test_followers_get_what_the_leader_lands() -> None:
    flights = Flights()
    leader = flights.join("k")
    followers = [flights.join("k") for _ in range(3)]
    assert leader.leads and not any(f.leads for f in followers)
    waiting = [asyncio.create_task(f.follow()) for f in followers]
    await asyncio.sleep(0)
    with leader:
        leader.land(ANSWER)
    assert await asyncio.gather(*waiting) == [ANSWER] * 3


async def test_a_leader_that_fails_lands_nothing_and_followers_ask_themselves() -> None:
    flights = Flights()
    leader = flights.join("k")
    follower = flights.join("k")
    waiting = asyncio.create_task(follower.follow())
    try:
        with leader:
            raise ConnectionError("upstream down")
    except ConnectionError:
        pass
    assert await waiting is None


async def test_the_key_is_free_once_landed_and_only_the_first_landing_counts() -> None:
    flights = Flights()
    leader = flights.join("k")
    leader.land(ANSWER)
    leader.land({"id": "other"})  # a second landing changes nothing
    late = flights.join("k")
    assert late.leads  # a new call: the answer is in the cache by now, or it is asked anew
    follower = flights.join("k")
    late.land({"id": "c2"})
    assert await follower.follow() == {"id": "c2"}


async def test_keys_are_separate_and_a_lone_call_needs_no_landing() -> None:
    flights = Flights()
    assert flights.join("a").leads and flights.join("b").leads
    alone = Flight.alone()
    assert alone.leads
    with alone:
        alone.land(ANSWER)  # nobody follows: a no-op
