"""What an upstream call returns, on either lane (``proxy.upstream``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
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
