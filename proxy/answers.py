"""How an answer is produced and written, the one place JSON and streams differ.

An answer comes from one of three sources: a cache entry (``cached``), a call another
request leads (``shared``), or an upstream call of its own (``fresh``, which lands the
completion for followers and hands it to admission). ``JsonAnswer`` writes each as one JSON
body; ``StreamAnswer`` as OpenAI chunks, replaying cached and shared answers and passing a
fresh stream through as it arrives.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson

from cache.replay import assemble, replay
from proxy.flights import Completion, Flight
from proxy.metrics import Metrics
from proxy.speculation import Call
from proxy.tracing import Tracing, upstream_span
from proxy.upstream import Upstream, UpstreamReply, UpstreamStream

Chunks = AsyncIterator[dict[str, Any]]
"""A streamed answer: OpenAI chat-completion chunks."""
Usage = Callable[[], Mapping[str, Any] | None]
"""The answer's token usage, worked out only when asked (for its trace)."""
Done = Callable[[Completion, str | None], None]
"""Told the whole completion, and the alias that answered it, once a fresh answer is
complete (admission)."""
T = TypeVar("T")


def _no_usage() -> None:
    return None


@dataclass(frozen=True)
class Answer(Generic[T]):
    """An answer ready to write."""

    body: T
    """The JSON bytes, or the chunks."""
    usage: Usage = _no_usage
    """Its token usage (JSON answers; a stream's is not known when its headers go out)."""


class UpstreamCalls:
    """The upstream calls of the chat path, timed as the ``upstream`` stage and traced
    (``chat <model>`` spans with the GenAI attributes)."""

    def __init__(self, upstream: Upstream, metrics: Metrics, tracing: Tracing) -> None:
        self.upstream = upstream
        self.metrics = metrics
        self.tracing = tracing

    async def json(self, body: Mapping[str, Any]) -> UpstreamReply:
        """The upstream call of a JSON answer (chat; ``proxy.text_completions`` asks for a
        text completion instead)."""
        return await self.upstream.chat(body)

    async def event_stream(self, body: Mapping[str, Any]) -> UpstreamStream:
        """The upstream call of a streamed answer, open at its first chunk."""
        return await self.upstream.chat_stream(body)

    async def chat(self, body: Mapping[str, Any]) -> UpstreamReply:
        """One JSON completion."""
        with self.metrics.timed("upstream"):  # the stage's span, when tracing is on
            reply = await self.json(body)
            upstream_span(self.tracing.current(), body["model"], reply.completion.get("usage"))
            return reply

    async def stream(self, body: Mapping[str, Any]) -> UpstreamStream:
        """The upstream's chunks, timed (and traced) from the call to the last chunk, or to
        the stream's ``aclose``."""
        started = time.perf_counter()
        span = self.tracing.start_span("vetcache.upstream")

        def finish(usage: Mapping[str, Any] | None) -> None:
            self.metrics.stage("upstream", time.perf_counter() - started)
            upstream_span(span, body["model"], usage)
            span.end()

        try:
            stream = await self.event_stream(body)
        except BaseException:
            finish(None)
            raise
        return UpstreamStream(_Timed(stream.chunks, finish), stream.answering)


class _Timed:
    """A stream's chunks that report once, when they end, fail or are closed unread."""

    def __init__(self, chunks: Chunks, finish: Callable[[Mapping[str, Any] | None], None]) -> None:
        self._chunks = chunks
        self._finish: Callable[[Mapping[str, Any] | None], None] | None = finish
        self._usage: Mapping[str, Any] | None = None

    def __aiter__(self) -> _Timed:
        return self

    async def __anext__(self) -> dict[str, Any]:
        try:
            chunk = await self._chunks.__anext__()
        except BaseException:
            self._end()
            raise
        self._usage = chunk.get("usage") or self._usage
        return chunk

    def _end(self) -> None:
        finish, self._finish = self._finish, None
        if finish is not None:
            finish(self._usage)

    async def aclose(self) -> None:
        """Release the upstream's stream (its connection), read to the end or not."""
        self._end()
        await close(self._chunks)


class Mapped:
    """``chunks``, each mapped by ``step``; ``aclose`` closes ``chunks`` (the upstream)."""

    def __init__(
        self,
        chunks: AsyncIterator[dict[str, Any]],
        step: Callable[[Mapping[str, Any]], dict[str, Any]],
    ) -> None:
        self._chunks = chunks
        self._step = step

    def __aiter__(self) -> Mapped:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return self._step(await self._chunks.__anext__())

    async def aclose(self) -> None:
        """Release the upstream's stream."""
        await close(self._chunks)


async def close(chunks: Chunks) -> None:
    """Close ``chunks`` if they can be (an async generator, the upstream's stream)."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()


class AnswerForm(ABC, Generic[T]):
    """How answers of one wire format are produced."""

    def __init__(self, calls: UpstreamCalls) -> None:
        self.calls = calls

    @abstractmethod
    def cached(self, response: str) -> Answer[T]:
        """From a cache entry's stored completion (JSON text)."""

    @abstractmethod
    def shared(self, completion: Completion) -> Answer[T]:
        """From the completion a leader's call returned."""

    @abstractmethod
    def start(self, body: Mapping[str, Any]) -> Call[Any]:
        """Its upstream call, started now, for ``fresh`` to use later (``proxy.speculation``)."""

    @abstractmethod
    async def fresh(
        self, body: Mapping[str, Any], flight: Flight, done: Done, started: Call[Any] | None = None
    ) -> Answer[T]:
        """From an upstream call of its own (``started`` already, or made now), landed on
        ``flight`` and handed to ``done`` once complete (an error, or a stream broken off,
        lands nothing)."""


class JsonAnswer(AnswerForm[bytes]):
    """One JSON body (``stream: false``)."""

    def cached(self, response: str) -> Answer[bytes]:
        return Answer(response.encode(), lambda: orjson.loads(response).get("usage"))

    def shared(self, completion: Completion) -> Answer[bytes]:
        return Answer(orjson.dumps(completion), lambda: completion.get("usage"))

    def start(self, body: Mapping[str, Any]) -> Call[UpstreamReply]:
        return Call(self.calls.chat(body), _nothing)

    async def fresh(
        self, body: Mapping[str, Any], flight: Flight, done: Done, started: Call[Any] | None = None
    ) -> Answer[bytes]:
        with flight:
            reply: UpstreamReply = await (started.result() if started else self.calls.chat(body))
            done(reply.completion, reply.answered_by)
            flight.land(reply.completion)
        return self.shared(reply.completion)


class StreamAnswer(AnswerForm[Chunks]):
    """OpenAI chunks (``stream: true``), written as server-sent events by the route."""

    def __init__(self, calls: UpstreamCalls, include_usage: bool) -> None:
        super().__init__(calls)
        self.include_usage = include_usage
        """``stream_options.include_usage``: replays end with a usage chunk."""

    def cached(self, response: str) -> Answer[Chunks]:
        return self.shared(orjson.loads(response))

    def shared(self, completion: Completion) -> Answer[Chunks]:
        return Answer(_aiter(replay(completion, include_usage=self.include_usage)))

    def start(self, body: Mapping[str, Any]) -> Call[UpstreamStream]:
        return Call(self.calls.stream(body), _close_stream)

    async def fresh(
        self, body: Mapping[str, Any], flight: Flight, done: Done, started: Call[Any] | None = None
    ) -> Answer[Chunks]:
        try:
            stream: UpstreamStream = await (
                started.result() if started else self.calls.stream(body)
            )
        except BaseException:
            flight.land(None)
            raise
        return Answer(_tee(stream, flight, done, self.include_usage))


async def _tee(stream: UpstreamStream, flight: Flight, done: Done, include_usage: bool) -> Chunks:
    """Pass chunks through as they arrive; once the stream completed, hand the whole answer
    to the followers and to ``done``. An interrupted stream lands nothing, and a stream left
    unread (the client went away) is closed at once, releasing the upstream connection.

    The upstream is always asked for usage (``proxy.upstream``), so the entry carries it; a
    client that did not ask for it (``stream_options.include_usage``) does not see it."""
    seen: list[dict[str, Any]] = []
    try:
        with flight:
            async for chunk in stream.chunks:
                seen.append(chunk)
                shown = chunk if include_usage else _without_usage(chunk)
                if shown is not None:
                    yield shown
            completion = assemble(seen)
            if completion is not None:
                done(completion, stream.answering())
                flight.land(completion)
    finally:
        await close(stream.chunks)


def _without_usage(chunk: dict[str, Any]) -> dict[str, Any] | None:
    """``chunk`` as a client that did not ask for usage sees it: the usage chunk (no choices)
    not at all, another chunk without its ``usage`` field."""
    if "usage" not in chunk:
        return chunk
    if not chunk.get("choices"):
        return None
    return {name: value for name, value in chunk.items() if name != "usage"}


async def _nothing(_reply: UpstreamReply) -> None:
    """A JSON reply holds nothing open."""


async def _close_stream(stream: UpstreamStream) -> None:
    await close(stream.chunks)


async def _aiter(chunks: Iterable[dict[str, Any]]) -> Chunks:
    for chunk in chunks:
        yield chunk
