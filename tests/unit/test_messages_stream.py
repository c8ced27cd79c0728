"""The Anthropic stream events written from chat chunks (``proxy.messages_stream``) say what
litellm's ``AnthropicStreamWrapper`` says: both streams are read by the anthropic SDK's own
accumulator (what ``client.messages.stream(...).get_final_message()`` does) and compared."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from anthropic.lib.streaming._messages import accumulate_event

from audit.llm_client import import_litellm
from cache.replay import replay
from proxy.messages_wire import to_events

BASE = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "upstream"}
USAGE = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "lookup", "arguments": '{"q": "x"}'},
}


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {**BASE, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def replayed(message: dict[str, Any], finish: str) -> list[dict[str, Any]]:
    """The chunks of a cache hit (the replay of a stored completion)."""
    completion = {
        "id": "c", "object": "chat.completion", "created": 1, "model": "upstream",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": USAGE,
    }  # fmt: skip
    return list(replay(completion, include_usage=True))


STREAMS = {
    "text": replayed({"role": "assistant", "content": "It is Paris, the capital."}, "stop"),
    "max tokens": replayed({"role": "assistant", "content": "It is"}, "length"),
    "empty": replayed({"role": "assistant", "content": ""}, "stop"),
    "one tool": replayed(
        {"role": "assistant", "content": None, "tool_calls": [CALL]}, "tool_calls"
    ),
    "two tools": replayed(
        {"role": "assistant", "content": None, "tool_calls": [CALL, {**CALL, "id": "call_2"}]},
        "tool_calls",
    ),
    "text then tool": replayed(
        {"role": "assistant", "content": "Let me look.", "tool_calls": [CALL]}, "tool_calls"
    ),
    "refusal": replayed({"role": "assistant", "content": None, "refusal": "No."}, "stop"),
    "upstream's fragments": [  # as OpenAI streams a call: id and name, then argument pieces
        chunk({"role": "assistant", "content": None}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_9",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": ""},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"q": '}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"y"}'}}]}),
        chunk({}, "tool_calls"),
        {**BASE, "choices": [], "usage": USAGE},
    ],
}


async def source(chunks: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for item in chunks:
        yield item


async def litellm_events(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    import_litellm()
    from litellm.llms.anthropic.messages.adapters.streaming_iterator import (
        AnthropicStreamWrapper,
    )
    from litellm.types.utils import ModelResponseStream

    async def objects() -> AsyncIterator[ModelResponseStream]:
        for item in chunks:
            yield ModelResponseStream(**item)

    wrapper = AnthropicStreamWrapper(objects(), model="alias")  # type: ignore[arg-type]
    return [dict(event) async for event in wrapper]


def final_message(events: list[dict[str, Any]]) -> dict[str, Any]:
    """What the anthropic SDK makes of ``events``, without the message id."""
    snapshot: Any = None
    json_bufs: dict[int, bytes] = {}
    for event in events:
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=json_bufs)  # type: ignore[arg-type]
    found: dict[str, Any] = snapshot.to_dict()
    del found["id"]
    return found


@pytest.mark.parametrize("name", list(STREAMS))
async def test_the_sdk_reads_the_same_message_as_from_litellms_wrapper(name: str) -> None:
    ours = [event async for event in to_events(source(STREAMS[name]), "alias", {})]
    theirs = await litellm_events(STREAMS[name])
    assert final_message(ours) == final_message(theirs)
    assert [event["type"] for event in ours] == [event["type"] for event in theirs]


async def test_the_text_reaches_the_client_piece_by_piece() -> None:
    events = [event async for event in to_events(source(STREAMS["text"]), "alias", {})]
    pieces = [event["delta"]["text"] for event in events if event["type"] == "content_block_delta"]
    assert len(pieces) > 1 and "".join(pieces) == "It is Paris, the capital."


async def test_a_stream_without_finish_reason_still_ends_the_turn() -> None:
    """A chat stream that ends without ``finish_reason`` (an upstream's ``null``): the
    client still gets ``message_delta`` with ``end_turn`` (litellm's wrapper sends none, and
    the SDK's message then has no ``stop_reason``: an intended difference)."""
    chunks = [chunk({"role": "assistant", "content": "Hi"}), chunk({"content": "!"})]
    events = [event async for event in to_events(source(chunks), "alias", {})]
    assert [event["type"] for event in events][-2:] == ["message_delta", "message_stop"]
    message = final_message(events)
    assert message["stop_reason"] == "end_turn"
    assert message["content"] == [{"type": "text", "text": "Hi!"}]


async def test_a_reasoning_delta_becomes_a_thinking_block() -> None:
    chunks = [
        chunk({"role": "assistant", "reasoning_content": "Think."}),
        chunk({"content": "Done."}),
        chunk({}, "stop"),
    ]
    message = final_message([event async for event in to_events(source(chunks), "alias", {})])
    assert [block["type"] for block in message["content"]] == ["thinking", "text"]
    assert message["content"][0]["thinking"] == "Think."
    assert message["content"][1]["text"] == "Done."
