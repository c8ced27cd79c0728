"""``/v1/responses`` requests that depend on the upstream's stored state
(``ResponsesRequest.stateful``: ``previous_response_id``, ``conversation``,
``background: true``, ``store: true``), passed through to the upstream's own Responses API
(litellm's Router ``aresponses``, on every lane) and never cached.

litellm encodes the deployment into a response's ``id``, so that a follow-up naming it as
``previous_response_id`` reaches the same deployment; the id is passed on as litellm gives it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from pydantic import BaseModel

from proxy.errors import UpstreamInvalidReply
from proxy.upstream import Upstream
from proxy.upstream_errors import INVALID_REPLY

Events = AsyncIterator[dict[str, Any]]


def _dumped(value: Any) -> dict[str, Any]:
    if not isinstance(value, BaseModel):
        raise UpstreamInvalidReply(INVALID_REPLY)
    return value.model_dump(mode="json", exclude_none=True, warnings=False)


async def pass_through(upstream: Upstream, body: dict[str, Any]) -> dict[str, Any] | Events:
    """The upstream's answer to ``body``: the response object, or its stream events. A
    stream's first event is read before returning, so an upstream that fails at the start
    raises here, while the client can still get an error status."""
    reply = await upstream.responses(body)
    if body.get("stream") is not True:
        return _dumped(reply)
    iterator = reply.__aiter__()
    try:
        first = await iterator.__anext__()
    except StopAsyncIteration:
        first = None
    except Exception as exc:  # litellm raises many types; translated as on the chat path
        await _close(reply)
        raise upstream.translate(exc) from exc
    return _events(upstream, reply, first, iterator)


async def _events(
    upstream: Upstream, stream: Any, first: Any, iterator: Any
) -> AsyncGenerator[dict[str, Any], None]:
    try:
        if first is None:
            return
        yield _dumped(first)
        try:
            async for event in iterator:
                yield _dumped(event)
        except Exception as exc:  # translated, see pass_through()
            raise upstream.translate(exc) from exc
    finally:
        await _close(stream)


async def _close(stream: Any) -> None:
    """Release litellm's stream (its connection), if it can be closed."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
