"""``EventStreamResponse``: pieces ready together leave in one message, a piece alone leaves
at once, an iterator's failure is raised after what it gave was sent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from proxy.event_stream import EventStreamResponse


class Recorder:
    """An ASGI ``send`` that keeps the body messages."""

    def __init__(self) -> None:
        self.bodies: list[tuple[bytes, bool]] = []
        self.arrived = asyncio.Event()

    async def send(self, message: Any) -> None:
        if message["type"] == "http.response.body":
            self.bodies.append((message["body"], message["more_body"]))
            self.arrived.set()


async def test_pieces_ready_together_are_written_in_one_message() -> None:
    async def together() -> AsyncIterator[bytes]:
        for piece in (b"a", b"b", b"c"):
            yield piece

    recorder = Recorder()
    await EventStreamResponse(together()).stream_response(recorder.send)
    assert recorder.bodies == [(b"abc", True), (b"", False)]


async def test_a_piece_alone_is_written_before_the_next_is_ready() -> None:
    """No waiting for company: the first piece is out while the second is not yet made."""
    release = asyncio.Event()

    async def apart() -> AsyncIterator[bytes]:
        yield b"first"
        await release.wait()
        yield b"second"

    recorder = Recorder()
    writing = asyncio.create_task(EventStreamResponse(apart()).stream_response(recorder.send))
    await asyncio.wait_for(recorder.arrived.wait(), 5)
    assert recorder.bodies == [(b"first", True)]
    release.set()
    await asyncio.wait_for(writing, 5)
    assert recorder.bodies == [(b"first", True), (b"second", True), (b"", False)]


async def test_a_failing_iterator_raises_after_its_pieces_were_sent() -> None:
    async def failing() -> AsyncIterator[str]:
        yield "text is encoded"
        raise RuntimeError("upstream broke")

    recorder = Recorder()
    with pytest.raises(RuntimeError, match="upstream broke"):
        await EventStreamResponse(failing()).stream_response(recorder.send)
    assert recorder.bodies == [(b"text is encoded", True)]


async def test_cancelling_the_writer_stops_the_reader() -> None:
    """A client gone (Starlette cancels the writer) leaves no task reading the upstream."""
    closed = asyncio.Event()
    started = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        try:
            while True:
                started.set()
                yield b"x"
                await asyncio.sleep(0.01)
        finally:
            closed.set()

    recorder = Recorder()
    writing = asyncio.create_task(EventStreamResponse(endless()).stream_response(recorder.send))
    await asyncio.wait_for(started.wait(), 5)
    writing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writing
    await asyncio.wait_for(closed.wait(), 5)
