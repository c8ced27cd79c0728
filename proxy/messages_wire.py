"""Anthropic's Messages format <-> chat completions, plain dicts in and out.

``/v1/messages`` translates at its boundary (the cache, audits and admission only know chat
completions): the request to a chat-completion body (``to_chat``), the chat answer back to
an Anthropic message (``to_message``) or the chat chunks to Anthropic's stream events
(``to_events``). The request and the JSON answer go through litellm's own adapter (what the
LiteLLM proxy serves on its ``/v1/messages``), ``LiteLLMAnthropicMessagesAdapter``; the
events are written by ``proxy.messages_stream`` (litellm's stream wrapper costs 92 us of CPU
per chunk, see there), with the usage translated by the same adapter.

What litellm's adapter does not say, and this module adds: the chat body asks a stream for
usage (``message_delta`` carries it), and leaves out the ``None`` fields the adapter writes
into assistant messages (``thinking_blocks: null``), so an Anthropic request and a chat
request with the same conversation make the same chat body, hence the same cache key.
``stop_reason: stop_sequence`` is never reported: a chat completion does not say whether a
stop sequence ended it (``finish_reason: stop`` either way), so it reads ``end_turn``.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from audit.llm_client import import_litellm
from proxy import messages_stream
from proxy.answers import Chunks
from proxy.errors import InvalidRequest

if TYPE_CHECKING:
    from litellm.llms.anthropic.messages.adapters.transformation import (
        LiteLLMAnthropicMessagesAdapter,
    )

ToolNames = dict[str, str]
"""Tool names the translation shortened (OpenAI allows 64 characters) -> the client's."""

LITELLM_ONLY = ("litellm_metadata",)
"""Request fields litellm's adapter would turn into litellm's own parameters: dropped."""


@functools.cache
def _adapter() -> LiteLLMAnthropicMessagesAdapter:
    import_litellm()  # quiet and offline, before the adapter imports litellm
    from litellm.llms.anthropic.messages.adapters.transformation import (
        LiteLLMAnthropicMessagesAdapter,
    )

    return LiteLLMAnthropicMessagesAdapter()


def to_chat(body: Mapping[str, Any]) -> tuple[dict[str, Any], ToolNames]:
    """The chat-completion body for a valid Messages request ``body``, and the tool names
    to restore in the answer; ``InvalidRequest`` if no message survives the translation."""
    request = {key: value for key, value in body.items() if key not in LITELLM_ONLY}
    chat, names = _adapter().translate_anthropic_to_openai(request)  # type: ignore[arg-type]
    result: dict[str, Any] = dict(chat)
    result["messages"] = [
        {key: value for key, value in message.items() if value is not None}
        for message in result["messages"]
    ]
    if not any(message["role"] != "system" for message in result["messages"]):
        raise InvalidRequest(
            "Invalid 'messages': nothing the gateway can pass on (litellm's translation drops "
            "content blocks of unknown types and images or documents without a usable source)",
            param="messages",
        )
    if result.get("stream"):
        result["stream_options"] = {"include_usage": True}
    return result, names


def to_message(completion: bytes, model: str, names: ToolNames) -> dict[str, Any]:
    """The Anthropic message for a chat completion's JSON, naming ``model`` (the alias the
    client asked for, as its stream does). A completion without ``usage`` (an upstream that
    sends none, an entry admitted without it) reads as zero tokens: litellm's adapter
    needs one."""
    adapter = _adapter()  # first: litellm imported quiet and offline
    from litellm import ModelResponse

    data = orjson.loads(completion)
    data["usage"] = data.get("usage") or {}
    message = adapter.translate_openai_response_to_anthropic(ModelResponse(**data), names)
    return {**message, "model": model}


def to_events(chunks: Chunks, model: str, names: ToolNames) -> AsyncGenerator[dict[str, Any], None]:
    """Anthropic's stream events (``message_start`` ... ``message_stop``) for chat chunks
    (``proxy.messages_stream``). Closing it closes ``chunks`` (the upstream's stream). A
    failure of ``chunks`` is raised as it is, after the events sent so far."""
    return messages_stream.events(chunks, model, names, _usage)


def _usage(usage: Mapping[str, Any] | None) -> dict[str, Any]:
    """Anthropic's usage for a chat usage (litellm's adapter, as for JSON answers)."""
    adapter = _adapter()  # first: litellm imported quiet and offline
    from litellm.types.utils import Usage

    translated = adapter.translate_openai_usage_to_anthropic_usage(Usage(**(usage or {})))
    return dict(translated)


def frame(event: Mapping[str, Any]) -> bytes:
    """One server-sent event as Anthropic writes it: ``event: <type>`` and its data."""
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
