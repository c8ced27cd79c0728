"""Anthropic's Messages format <-> chat completions (``proxy.messages_wire``), and the
Anthropic error shape (``proxy.errors.body_for``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from cache.keys import derive_key
from cache.replay import replay
from proxy.errors import (
    AuthenticationFailed,
    InvalidRequest,
    ModelNotFound,
    UpstreamError,
    UpstreamTimeout,
    anthropic_type,
    body_for,
)
from proxy.messages_wire import frame, to_chat, to_events, to_message

TOOL = {"name": "lookup", "description": "Look up.", "input_schema": {"type": "object"}}
CHAT_TOOL = {
    "type": "function",
    "function": {"name": "lookup", "parameters": {"type": "object"}, "description": "Look up."},
}


def completion(message: dict[str, Any], finish: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "upstream-model",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }


CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "lookup", "arguments": '{"q": "x"}'},
}
TEXT = completion({"role": "assistant", "content": "It is Paris."}, "stop")
TOOL_CALL = completion({"role": "assistant", "content": None, "tool_calls": [CALL]}, "tool_calls")


def test_a_request_becomes_the_chat_body_a_chat_client_would_send() -> None:
    chat, names = to_chat(
        {
            "model": "m",
            "max_tokens": 64,
            "system": "Be brief.",
            "messages": [
                {"role": "user", "content": "Look up x."},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "x"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a door"},
                    {"type": "text", "text": "And y?"},
                ]},
            ],
            "tools": [TOOL],
            "tool_choice": {"type": "any"},
            "stop_sequences": ["END"],
            "temperature": 0.5,
            "metadata": {"user_id": "u1"},
            "litellm_metadata": {"api_base": "http://evil"},
        }
    )  # fmt: skip
    assert names == {}
    assert chat == {
        "model": "m",
        "max_tokens": 64,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Look up x."},
            {"role": "assistant", "tool_calls": [
                {"id": "toolu_1", "type": "function",
                 "function": {"name": "lookup", "arguments": '{"q": "x"}'}}
            ]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "a door"},
            {"role": "user", "content": [{"type": "text", "text": "And y?"}]},
        ],
        "tools": [CHAT_TOOL],
        "tool_choice": "required",
        "stop": ["END"],
        "temperature": 0.5,
        "user": "u1",
    }  # fmt: skip


def test_a_stream_asks_for_usage() -> None:
    chat, _ = to_chat(
        {
            "model": "m",
            "max_tokens": 8,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        }
    )
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    plain, _ = to_chat(
        {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    )
    assert "stream_options" not in plain


def test_same_conversation_same_key_as_a_chat_request() -> None:
    """The key is the chat body's: an Anthropic request shares entries with the chat request
    it translates to, and a different system prompt is another scope."""

    def key(body: dict[str, Any]) -> tuple[str, str]:
        found = derive_key(body, tenant="t", namespace="n", embedder="e")
        return found.scope, found.exact

    anthropic = {"model": "m", "max_tokens": 64, "system": "Be brief.", "tools": [TOOL],
                 "messages": [{"role": "user", "content": "Capital of France?"}]}  # fmt: skip
    chat = {"model": "m", "max_tokens": 64, "tools": [CHAT_TOOL], "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
    ]}  # fmt: skip
    assert key(to_chat(anthropic)[0]) == key(chat)
    assert key(to_chat({**anthropic, "system": "Be long."})[0])[0] != key(chat)[0]
    assert key(to_chat({**anthropic, "tools": []})[0])[0] != key(chat)[0]


def test_a_text_answer_becomes_a_message_named_by_the_alias() -> None:
    message = to_message(orjson.dumps(TEXT), "alias", {})
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["model"] == "alias"
    assert message["content"] == [{"type": "text", "text": "It is Paris."}]
    assert message["stop_reason"] == "end_turn"
    assert message["usage"]["input_tokens"] == 7 and message["usage"]["output_tokens"] == 3


def test_a_completion_without_usage_reads_as_zero_tokens() -> None:
    """Entries admitted from a stream that did not ask for usage hold none (and some
    upstreams send none): the message still answers, with zero tokens."""
    answer = {key: value for key, value in TEXT.items() if key != "usage"}
    message = to_message(orjson.dumps(answer), "a", {})
    assert message["content"] == [{"type": "text", "text": "It is Paris."}]
    assert message["usage"]["input_tokens"] == 0 and message["usage"]["output_tokens"] == 0
    assert (
        to_message(orjson.dumps({**answer, "usage": None}), "a", {})["usage"]["output_tokens"] == 0
    )


@pytest.mark.parametrize(("finish", "reason"), [("length", "max_tokens"), ("stop", "end_turn")])
def test_finish_reasons_map_to_stop_reasons(finish: str, reason: str) -> None:
    answer = completion({"role": "assistant", "content": "x"}, finish)
    assert to_message(orjson.dumps(answer), "a", {})["stop_reason"] == reason


def test_a_tool_call_becomes_a_tool_use_block() -> None:
    message = to_message(orjson.dumps(TOOL_CALL), "a", {})
    assert message["stop_reason"] == "tool_use"
    assert message["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "lookup", "input": {"q": "x"}}
    ]


async def events_of(answer: dict[str, Any]) -> list[dict[str, Any]]:
    async def chunks() -> AsyncIterator[dict[str, Any]]:
        for chunk in replay(answer, include_usage=True):
            yield chunk

    return [event async for event in to_events(chunks(), "alias", {})]


async def test_a_stream_becomes_anthropic_events() -> None:
    events = await events_of(TEXT)
    kinds = [event["type"] for event in events]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(kinds[2:-3]) == {"content_block_delta"}
    assert events[0]["message"]["model"] == "alias"
    text = "".join(event["delta"]["text"] for event in events[2:-3])
    assert text == "It is Paris."
    assert events[-2]["delta"]["stop_reason"] == "end_turn"
    assert events[-2]["usage"]["output_tokens"] == 3


async def test_a_streamed_tool_call_becomes_a_tool_use_block() -> None:
    events = await events_of(TOOL_CALL)
    starts = [event["content_block"] for event in events if event["type"] == "content_block_start"]
    assert starts[-1]["type"] == "tool_use" and starts[-1]["name"] == "lookup"
    partial = "".join(
        event["delta"]["partial_json"]
        for event in events
        if event["type"] == "content_block_delta" and event["delta"]["type"] == "input_json_delta"
    )
    assert orjson.loads(partial) == {"q": "x"}
    assert events[-2]["delta"]["stop_reason"] == "tool_use"


class Chunks:
    """Chat chunks that say when they are closed, read or not (as the upstream's are)."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self._chunks = iter(list(replay(answer)))
        self.closed = 0

    def __aiter__(self) -> Chunks:
        return self

    async def __anext__(self) -> dict[str, Any]:
        try:
            return next(self._chunks)
        except StopIteration:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        self.closed += 1


@pytest.mark.parametrize("read", [1, 3])
async def test_closing_the_events_closes_the_chat_stream(read: int) -> None:
    """A client that hangs up releases the upstream's stream, also before the first chunk
    was read (``message_start`` comes before any)."""
    chunks = Chunks(TEXT)
    events = to_events(chunks, "alias", {})
    for _ in range(read):
        await anext(events)
    await events.aclose()
    assert chunks.closed >= 1


async def test_a_failing_chat_stream_raises_after_the_events_sent() -> None:
    async def chunks() -> AsyncIterator[dict[str, Any]]:
        for chunk in list(replay(TEXT))[:2]:
            yield chunk
        raise UpstreamError("broke", status=502)

    seen: list[str] = []

    async def read() -> None:
        async for event in to_events(chunks(), "alias", {}):
            seen.append(event["type"])

    with pytest.raises(UpstreamError):
        await read()
    assert seen and seen[0] == "message_start" and "message_stop" not in seen


def test_an_event_is_framed_with_its_type() -> None:
    assert (
        frame({"type": "message_stop"}) == b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (InvalidRequest("bad"), "invalid_request_error"),
        (AuthenticationFailed("who"), "authentication_error"),
        (ModelNotFound("none"), "not_found_error"),
        (UpstreamError("slow down", status=429), "rate_limit_error"),
        (UpstreamError("busy", status=503), "overloaded_error"),
        (UpstreamTimeout("late"), "timeout_error"),
        (UpstreamError("boom", status=500), "api_error"),
    ],
)
def test_errors_on_messages_take_anthropic_shape(error: InvalidRequest, kind: str) -> None:
    assert body_for(error, "/v1/messages") == {
        "type": "error",
        "error": {"type": kind, "message": error.message},
    }
    assert body_for(error, "/v1/messages/count_tokens")["error"]["type"] == kind
    assert body_for(error, "/v1/chat/completions") == error.body()
    assert body_for(error, "/v1/messagesx") == error.body()


def test_anthropic_types_by_status() -> None:
    assert [anthropic_type(s) for s in (400, 403, 413, 422, 529, 502)] == [
        "invalid_request_error",
        "permission_error",
        "invalid_request_error",
        "invalid_request_error",
        "overloaded_error",
        "api_error",
    ]
