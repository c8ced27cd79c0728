"""What an upstream call returns, on either lane (``proxy.upstream``)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class UpstreamReply:
    """A JSON chat completion and the alias that answered it."""

    completion: dict[str, Any]
    """The OpenAI chat-completion object."""
    answered_by: str | None
    """The alias whose deployment answered (the alias asked for, or a fallback's)."""


@dataclass(frozen=True)
class UpstreamStream:
    """A streamed chat completion's chunks and the alias answering them."""

    chunks: AsyncIterator[dict[str, Any]]
    """The OpenAI chat-completion chunks."""
    answering: Callable[[], str | None]
    """The alias whose deployment answers (asked once the stream ended: litellm may fail
    over mid-stream)."""


class OpenChunks:
    """A stream's chunks whose ``aclose`` releases the upstream's stream (its connection) even
    before the first read: an async generator never started runs no ``finally``, and a
    speculative call dropped unread, or a client gone before its first chunk, never reads."""

    def __init__(
        self,
        chunks: AsyncGenerator[dict[str, Any], None],
        release: Callable[[], Awaitable[None]],
    ) -> None:
        self._chunks = chunks
        self._release = release
        self._started = False

    def __aiter__(self) -> OpenChunks:
        return self

    async def __anext__(self) -> dict[str, Any]:
        self._started = True
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        """Close the chunks; unread, release the upstream's stream here."""
        await self._chunks.aclose()
        if not self._started:
            await self._release()
