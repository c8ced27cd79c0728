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


def is_event_stream(stream: Any) -> bool:
    """Whether a streamed reply is an event stream (an HTML page read as one is an empty
    answer). Fragile: litellm keeps the upstream's response headers, prefixed with
    ``llm_provider-``, in the stream's hidden params; when they are missing, the stream is
    taken as it is."""
    hidden = getattr(stream, "_hidden_params", None)
    headers = hidden.get("additional_headers") if isinstance(hidden, dict) else None
    kind = headers.get("llm_provider-content-type") if isinstance(headers, dict) else None
    return not isinstance(kind, str) or kind.lower().startswith("text/event-stream")


# Top-level fields of OpenAI's chat objects; other top-level fields litellm adds are kept only
# when they carry a value (providers' extras), never as a litter of nulls.
_STANDARD_FIELDS = frozenset(
    {"id", "object", "created", "model", "system_fingerprint", "service_tier", "choices", "usage"}
)


def _drop_nulls(mapping: dict[str, Any], keep: frozenset[str] = frozenset()) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if v is not None or k in keep}


def clean(payload: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's wire format from a litellm response dump: no litellm-only fields, no nulls
    where OpenAI omits the field."""
    payload = {
        k: v
        for k, v in payload.items()
        if not k.startswith("_")
        and k != "provider_specific_fields"
        and (k in _STANDARD_FIELDS or v is not None)
    }
    for choice in payload.get("choices", ()):
        choice.pop("provider_specific_fields", None)
        message = choice.get("message")
        if isinstance(message, dict):
            message.pop("provider_specific_fields", None)
            choice["message"] = _drop_nulls(message, keep=frozenset({"content"}))
        delta = choice.get("delta")
        if isinstance(delta, dict):
            delta.pop("provider_specific_fields", None)
            choice["delta"] = _drop_nulls(delta)
    usage = payload.get("usage")
    if isinstance(usage, dict):
        payload["usage"] = _drop_nulls(usage)
    return payload
