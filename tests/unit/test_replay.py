"""Completions cut into chunks and put back together."""

from __future__ import annotations

from typing import Any

from cache.replay import assemble, replay

COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "A fairly long answer, cut into several chunks.",
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12},
}

TOOL_CALL: dict[str, Any] = {
    **COMPLETION,
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"q": "x"}'},
                    }
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
}


def test_replay_is_openai_chunks_role_first_finish_last() -> None:
    chunks = list(replay(COMPLETION, include_usage=True))
    assert len(chunks) > 3
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert chunks[-1]["usage"] == COMPLETION["usage"] and chunks[-1]["choices"] == []


def test_replay_then_assemble_round_trips() -> None:
    assert assemble(replay(COMPLETION, include_usage=True)) == COMPLETION
    assert assemble(replay(TOOL_CALL, include_usage=True)) == TOOL_CALL


def test_tool_call_fragments_are_merged() -> None:
    pieces = [
        {
            "id": "c",
            "created": 1,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "look", "arguments": '{"q"'},
                            }
                        ],
                    },
                    "finish_reason": None,
                }
            ],
        },
        {
            "id": "c",
            "created": 1,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {"index": 0, "function": {"name": "up", "arguments": ': "x"}'}}
                        ]
                    },
                    "finish_reason": None,
                }
            ],
        },
        {
            "id": "c",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}],
        },
    ]
    message = assemble(pieces)["choices"][0]["message"]  # type: ignore[index]
    assert message["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "lookup", "arguments": '{"q": "x"}'},
        }
    ]


def test_unfinished_stream_assembles_to_nothing() -> None:
    chunks = list(replay(COMPLETION))[:-1]  # the finish_reason chunk never came
    assert assemble(chunks) is None
    assert assemble([]) is None
