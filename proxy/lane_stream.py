"""A streamed answer on the direct lane: the upstream's server-sent events parsed one by one
into OpenAI chunks, and the connection released however the stream ends (finished,
failed, or closed early by a client that went away)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from typing import Any

import aiohttp
import orjson
from aiohttp.http_exceptions import HttpProcessingError

from proxy.lane_errors import (
    LaneFailure,
    invalid_reply,
    logged,
    stream_error_event,
    transport_failure,
)

Chunk = dict[str, Any]
_DONE = b"[DONE]"


def chunk_of(payload: bytes) -> Chunk:
    """The chunk one event's data holds; a ``LaneFailure`` for an error event or data that
    is no chunk."""
    try:
        chunk = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise invalid_reply("event data is not JSON") from None
    if not isinstance(chunk, dict):
        raise invalid_reply("event data is not an object")
    if "error" in chunk:
        raise stream_error_event(chunk)
    if not isinstance(chunk.get("choices"), list):
        raise invalid_reply("event has no choices")
    return chunk


async def events(content: AsyncIterable[bytes]) -> AsyncIterator[Chunk]:
    """The chunks of an event stream (its body's lines), up to ``data: [DONE]`` (or the
    end of the body).

    Parsed per the server-sent events format: ``data:`` lines of one event joined, other
    fields and comments skipped, an event dispatched at its blank line.
    """
    data: list[bytes] = []
    async for raw in content:
        line = raw.rstrip(b"\r\n")
        if line:
            if line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
            continue
        if not data:
            continue
        payload = data[0] if len(data) == 1 else b"\n".join(data)
        data = []
        if payload == _DONE:
            return
        yield chunk_of(payload)
    if data and data != [_DONE]:
        yield chunk_of(b"\n".join(data))


async def first_chunk(
    response: aiohttp.ClientResponse, stream: AsyncIterator[Chunk]
) -> Chunk | None:
    """The stream's first chunk (None for an empty stream); on any failure, or when the
    caller is cancelled, the connection is closed before the exception goes on."""
    try:
        return await anext(stream, None)
    except BaseException as exc:
        response.close()
        if isinstance(exc, LaneFailure):
            raise
        failure = _as_failure(exc)
        if failure is None:
            raise
        raise failure from exc


async def rest(
    response: aiohttp.ClientResponse, first: Chunk | None, stream: AsyncIterator[Chunk]
) -> AsyncGenerator[Chunk, None]:
    """``first``, then the stream's other chunks. A failure after the first chunk raises the
    gateway's error (logged; the route turns it into one error event); ``aclose()`` or a
    cancellation closes the connection at once."""
    finished = False
    try:
        if first is not None:
            yield first
            async for chunk in stream:
                yield chunk
        finished = True
    except LaneFailure as failure:
        raise logged(failure) from None
    except (TimeoutError, aiohttp.ClientError, ValueError, HttpProcessingError) as exc:
        mapped = _as_failure(exc)
        assert mapped is not None
        raise logged(mapped) from exc
    finally:
        if finished:
            response.release()
        else:
            response.close()


def _as_failure(exc: BaseException) -> LaneFailure | None:
    """The failure for an exception met while reading a stream; None for one that is not
    the upstream's doing (a cancellation)."""
    if isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError):
        return transport_failure(exc)
    if isinstance(exc, ValueError | HttpProcessingError):
        return invalid_reply(type(exc).__name__)  # an event line past the read buffer
    return None
