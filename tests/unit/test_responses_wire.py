"""``/v1/responses`` at its boundary: Responses requests <-> chat completions
(``proxy.responses_wire``), which requests are stateful (``proxy.responses_schemas``), and
how a broken stream ends (``proxy.routes.responses.sse``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from cache.replay import replay
from proxy.errors import InvalidRequest, UpstreamUnreachable
from proxy.responses_schemas import ResponsesRequest
from proxy.responses_wire import events, to_chat, to_response
from proxy.routes.responses import sse
from proxy.upstream_errors import translate

TOOL = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}
USAGE = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


def completion(message: dict[str, Any], finish: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": USAGE,
    }


TEXT = completion({"role": "assistant", "content": "Lima is the capital."})
CALL = completion(
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
        ],
    },
    "tool_calls",
)


def test_text_input_and_instructions_become_system_and_user_messages() -> None:
    chat = to_chat({"model": "m", "input": "Capital of Peru?", "instructions": "Be brief."})
    assert chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of Peru?"},
    ]
    assert chat["model"] == "m"
    assert chat["stream"] is False
    assert "stream_options" not in chat


def test_parameters_tools_and_text_format_are_translated() -> None:
    chat = to_chat(
        {
            "model": "m",
            "input": "hi",
            "stream": True,
            "temperature": 0.2,
            "max_output_tokens": 50,
            "tools": [TOOL],
            "tool_choice": "auto",
            "text": {"format": {"type": "json_schema", "name": "x", "schema": {}}},
        }
    )
    assert chat["temperature"] == 0.2
    assert chat["max_tokens"] == 50
    assert chat["tools"][0]["type"] == "function"
    assert chat["tools"][0]["function"]["name"] == "lookup"
    assert chat["tool_choice"] == "auto"
    assert chat["response_format"]["type"] == "json_schema"
    assert chat["stream"] is True
    assert chat["stream_options"] == {"include_usage": True}


def test_function_call_items_become_tool_calls_and_tool_messages() -> None:
    chat = to_chat(
        {
            "model": "m",
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "Look x up."}]},
                {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "x is a letter"},
            ],
        }
    )
    user, assistant, tool = chat["messages"]
    assert user["role"] == "user"
    assert assistant["role"] == "assistant"
    assert assistant["tool_calls"][0]["id"] == "c1"
    assert assistant["tool_calls"][0]["function"]["name"] == "lookup"
    assert tool == {"role": "tool", "content": "x is a letter", "tool_call_id": "c1"}


def test_two_requests_asking_the_same_translate_alike() -> None:
    """The key is derived from the chat body: same request, same body (so, same entry)."""
    ask = {"model": "m", "input": "Capital of Peru?", "instructions": "Be brief."}
    assert orjson.dumps(to_chat(ask)) == orjson.dumps(to_chat(dict(ask)))
    assert to_chat(ask) != to_chat({**ask, "instructions": "Be verbose."})


@pytest.mark.parametrize(
    "items",
    [
        [{"type": "no_such_item"}],
        [{"role": "robot", "content": "hi"}],
        [{"role": "user", "content": 42}],
    ],
)
def test_input_that_translates_to_no_valid_chat_request_is_refused(
    items: list[dict[str, Any]],
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        to_chat({"model": "m", "input": items})
    assert caught.value.param == "input"
    assert caught.value.status_code == 400


def test_text_answer_becomes_a_message_output_item() -> None:
    response = to_response({"model": "m", "input": "hi"}, orjson.dumps(TEXT))
    assert response["object"] == "response"
    assert response["id"] == "resp_abc123"
    assert response["status"] == "completed"
    assert response["store"] is False
    assert response["error"] is None
    (item,) = response["output"]
    assert item["type"] == "message"
    assert item["content"][0] == {
        "type": "output_text",
        "text": "Lima is the capital.",
        "annotations": [],
    }
    assert response["usage"]["input_tokens"] == 7
    assert response["usage"]["output_tokens"] == 3


def test_tool_call_answer_becomes_a_function_call_item() -> None:
    response = to_response({"model": "m", "input": "hi", "tools": [TOOL]}, orjson.dumps(CALL))
    (item,) = response["output"]
    assert item["type"] == "function_call"
    assert (item["call_id"], item["name"], item["arguments"]) == ("call_1", "lookup", "{}")


def test_truncated_answer_is_incomplete() -> None:
    cut = completion({"role": "assistant", "content": "Lima"}, "length")
    response = to_response({"model": "m", "input": "hi", "max_output_tokens": 1}, orjson.dumps(cut))
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}


async def chunks_of(answer: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    for chunk in replay(answer, include_usage=True):
        yield chunk


async def collected(stream: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event async for event in stream]


async def test_chunk_stream_becomes_response_events() -> None:
    found = await collected(events({"model": "m", "input": "hi"}, chunks_of(TEXT)))
    kinds = [event["type"] for event in found]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert "response.output_text.done" in kinds
    text = "".join(e["delta"] for e in found if e["type"] == "response.output_text.delta")
    assert text == "Lima is the capital."
    assert [e["sequence_number"] for e in found] == list(range(len(found)))
    ids = {e["response"]["id"] for e in found if "response" in e}
    assert ids == {"resp_abc123"}
    completed = found[-1]["response"]
    assert completed["store"] is False
    assert completed["usage"]["output_tokens"] == 3


async def test_tool_call_stream_becomes_function_call_events() -> None:
    found = await collected(events({"model": "m", "input": "hi", "tools": [TOOL]}, chunks_of(CALL)))
    kinds = [event["type"] for event in found]
    assert "response.function_call_arguments.done" in kinds
    (item,) = found[-1]["response"]["output"]
    assert item["type"] == "function_call" and item["name"] == "lookup"


async def test_stream_broken_midway_ends_with_error_and_response_failed() -> None:
    async def broken() -> AsyncIterator[dict[str, Any]]:
        chunks = list(replay(TEXT, include_usage=True))
        yield chunks[0]
        yield chunks[1]
        raise UpstreamUnreachable("could not connect to the upstream model")

    told: list[bool] = []
    written = [
        raw async for raw in sse(events({"model": "m", "input": "hi"}, broken()), "r1", told.append)
    ]
    assert told == [True]
    parsed = [orjson.loads(raw.split(b"\ndata: ", 1)[1]) for raw in written]
    assert written[-1].startswith(b"event: response.failed\n")
    error, failed = parsed[-2:]
    assert error["type"] == "error" and error["code"] == "upstream_unreachable"
    assert failed["response"]["status"] == "failed"
    assert failed["response"]["error"]["code"] == "upstream_unreachable"
    assert failed["response"]["id"] == "resp_abc123"
    numbers = [event["sequence_number"] for event in parsed]
    assert numbers == list(range(len(parsed)))


async def test_a_whole_stream_tells_it_did_not_fail() -> None:
    told: list[bool] = []
    written = [
        raw
        async for raw in sse(
            events({"model": "m", "input": "hi"}, chunks_of(TEXT)), "r", told.append
        )
    ]
    assert told == [False]
    assert written[-1].startswith(b"event: response.completed\n")


@pytest.mark.parametrize(
    ("state", "stateful"),
    [
        ({}, False),
        ({"store": False}, False),
        ({"background": False}, False),
        ({"store": True}, True),
        ({"background": True}, True),
        ({"previous_response_id": "resp_1"}, True),
        ({"conversation": "conv_1"}, True),
        ({"conversation": {"id": "conv_1"}}, True),
    ],
)
def test_requests_referencing_upstream_state_are_stateful(
    state: dict[str, Any], stateful: bool
) -> None:
    request = ResponsesRequest.model_validate({"model": "m", "input": "hi", **state})
    assert request.stateful is stateful


def test_an_upstream_error_quoted_in_litellms_message_keeps_its_status_and_code() -> None:
    """litellm's ``aresponses`` errors carry the upstream's body only in their message."""

    class ResponsesCallFailed(Exception):
        status_code = 503

        def __init__(self) -> None:
            import httpx

            self.message = (
                "litellm.ServiceUnavailableError: OpenAIException - "
                '{"error":{"message":"overloaded","type":"server_error","code":"busy"}}'
                "\n\nLiteLLM: model group 'm' failed"
            )
            super().__init__(self.message)
            request = httpx.Request("POST", "http://upstream/v1/responses")
            response = httpx.Response(503, request=request)
            self.__cause__ = httpx.HTTPStatusError("503", request=request, response=response)

    error = translate(ResponsesCallFailed(), TimeoutError)
    assert (error.status_code, error.code, error.message) == (503, "busy", "overloaded")
