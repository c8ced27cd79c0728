"""OpenAI's Responses API <-> chat completions, at the ``/v1/responses`` route's boundary.

The cache only knows chat completions, so a stateless Responses request is translated to the
chat-completion body that asks the same (``to_chat``), answered by the chat path, and its
answer translated back: the JSON (``to_response``) or the chunk stream (``events``).

The translations are litellm's (``LiteLLMCompletionResponsesConfig`` and its streaming
iterator, what the LiteLLM proxy serves), used on plain dicts. Two fields are the gateway's
own: a response's ``id`` is ``resp_`` + the chat completion's id (litellm's stream would
encode its routing into it), and ``store`` is ``false``, since nothing vetcache answers this
way is stored upstream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from pydantic import BaseModel

from audit.llm_client import import_litellm
from proxy.errors import InvalidRequest
from proxy.schemas import ChatCompletionRequest
from proxy.wire import validate

Body = Mapping[str, Any]
OWN_FIELDS = frozenset({"model", "input", "stream"})
"""Fields the translators take as arguments, not among the request's parameters."""
NULLS = {"error": None, "incomplete_details": None}
"""Fields of a response object OpenAI sends as null (litellm's other nulls are dropped)."""


def _translators() -> tuple[Any, Any]:
    """litellm's request/response translator and its streaming iterator (litellm imported
    once, quiet and offline, by ``import_litellm``)."""
    import_litellm()
    from litellm.responses.litellm_completion_transformation import (
        streaming_iterator,
        transformation,
    )

    return (
        transformation.LiteLLMCompletionResponsesConfig,
        streaming_iterator.LiteLLMCompletionStreamingIterator,
    )


def _params(body: Body) -> dict[str, Any]:
    return {name: value for name, value in body.items() if name not in OWN_FIELDS}


def _plain(value: Any) -> Any:
    """orjson's fallback: a pydantic object litellm left in a message, as its dict."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True, warnings=False)
    raise TypeError(type(value).__name__)


def to_chat(body: Body) -> dict[str, Any]:
    """The chat-completion body asking what the Responses request ``body`` asks: the
    instructions as the system message, the input items as messages, tools, tool choice,
    ``text.format`` as ``response_format``, sampling parameters; with ``stream``, usage asked
    for. ``InvalidRequest`` when the input cannot be translated into a valid chat request."""
    config, _ = _translators()
    stream = body.get("stream") is True
    try:
        translated = config.transform_responses_api_request_to_chat_completion_request(
            model=body["model"],
            input=body["input"],
            responses_api_request=_params(body),
            stream=stream,
        )
        chat: dict[str, Any] = orjson.loads(orjson.dumps(translated, default=_plain))
    except Exception as exc:  # noqa: BLE001 - litellm raises many kinds for malformed items
        raise InvalidRequest(
            f"Invalid 'input': cannot be read as a conversation ({type(exc).__name__})",
            param="input",
        ) from None
    chat["stream"] = stream
    if not stream:
        chat.pop("stream_options", None)
    try:
        validate(ChatCompletionRequest, chat)
    except InvalidRequest as exc:
        raise InvalidRequest(
            f"Invalid 'input': its chat translation is invalid: {exc.message}", param="input"
        ) from None
    return chat


def response_id(chat_id: str) -> str:
    """The id of the response that answers the chat completion ``chat_id``."""
    return "resp_" + chat_id.removeprefix("chatcmpl-")


def to_response(body: Body, completion: bytes) -> dict[str, Any]:
    """The Responses API's ``response`` object for a chat-completion JSON answer."""
    config, _ = _translators()
    chat = orjson.loads(completion)
    response = config.transform_chat_completion_response_to_responses_api_response(
        request_input=body["input"],
        responses_api_request=_params(body),
        chat_completion_response=chat,
    )
    payload = response.model_dump(mode="json", by_alias=True, exclude_none=True, warnings=False)
    return {
        **NULLS,
        **payload,
        "id": response_id(str(chat.get("id", ""))),
        "store": False,
    }


class _ChatStream:
    """Chat chunks (dicts) as litellm's streaming iterator reads a ``CustomStreamWrapper``:
    litellm's chunk objects, ``aclose``, and no logging object."""

    logging_obj = None

    def __init__(self, chunks: AsyncIterator[dict[str, Any]]) -> None:
        from litellm.types.utils import ModelResponseStream

        self._chunks = chunks
        self._model = ModelResponseStream
        self.chat_id = ""

    def __aiter__(self) -> _ChatStream:
        return self

    async def __anext__(self) -> Any:
        chunk = await self._chunks.__anext__()
        self.chat_id = self.chat_id or str(chunk.get("id", ""))
        return self._model(**chunk)

    async def aclose(self) -> None:
        aclose = getattr(self._chunks, "aclose", None)
        if aclose is not None:
            await aclose()


async def events(
    body: Body, chunks: AsyncIterator[dict[str, Any]]
) -> AsyncIterator[dict[str, Any]]:
    """The Responses API's stream events (``response.created``, ``...output_text.delta``,
    ``response.completed``...) for a chat chunk stream. A ``GatewayError`` the chunks raise
    passes through (the route ends the stream with it)."""
    _, iterator_type = _translators()
    stream = _ChatStream(chunks)
    iterator = iterator_type(
        model=body["model"],
        litellm_custom_stream_wrapper=stream,
        request_input=body["input"],
        responses_api_request=_params(body),
    )
    try:
        async for event in iterator:
            payload: dict[str, Any] = event.model_dump(
                mode="json", by_alias=True, exclude_none=True, warnings=False
            )
            response = payload.get("response")
            if isinstance(response, dict):
                payload["response"] = {
                    **response,
                    "id": response_id(stream.chat_id),
                    "store": False,
                }
            yield payload
    finally:
        await stream.aclose()
