"""Tool-call answers through a real ``vetcache serve`` with ``cache.admit_tool_calls`` on,
against the fake upstream's ``tool-call`` model, with the official ``openai`` client: the
answer is cached and replayed faithfully, as JSON and as a stream; a conversation that ends
in a tool result is never answered from the cache."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from proxy.fake_replies import make_answer, tool_call
from tests.conftest import served, until_hit

pytestmark = pytest.mark.integration

TOOLS: list[ChatCompletionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Search the product catalogue.",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }
]


@pytest.fixture(scope="module")
def gateway(fake_upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (``.../v1``) of a gateway with the embedded cache, admitting tool calls."""
    config = (
        "auth:\n  api_keys:\n    - {tenant: t1, key: sk-client-one}\n"
        "cache:\n  admit_tool_calls: true\n"
        "model_list:\n"
        f"  - {{model_name: tooler, model: openai/tool-call, api_base: '{fake_upstream}'}}\n"
    )
    with served(config, tmp_path_factory.mktemp("cfg")) as url:
        yield url + "/v1"


@pytest.fixture
def client(gateway: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway, api_key="sk-client-one", max_retries=0) as client:
        yield client


def expected_call(messages: list[ChatCompletionMessageParam]) -> dict[str, Any]:
    """The call the fake upstream's ``tool-call`` model makes for ``messages``."""
    return tool_call(make_answer("tool-call", messages))


def streamed(raw: Any) -> tuple[list[dict[str, Any]], str | None, str]:
    """A chat stream's tool calls (assembled by index), finish reason and text."""
    calls: dict[int, dict[str, Any]] = {}
    finish, text = None, ""
    for chunk in raw.parse():
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for piece in choice.delta.tool_calls or ():
                call = calls.setdefault(
                    piece.index,
                    {"id": None, "type": None, "function": {"name": "", "arguments": ""}},
                )
                call["id"] = piece.id or call["id"]
                call["type"] = piece.type or call["type"]
                if piece.function is not None:
                    call["function"]["name"] += piece.function.name or ""
                    call["function"]["arguments"] += piece.function.arguments or ""
    return [calls[i] for i in sorted(calls)], finish, text


def test_a_tool_call_answer_is_cached_and_replayed_as_json(client: openai.OpenAI) -> None:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "Find me a waterproof hiking jacket."}
    ]
    create = client.chat.completions.with_raw_response.create

    def ask() -> Any:
        return create(model="tooler", messages=messages, tools=TOOLS)

    miss = ask()
    assert miss.headers["x-vetcache"] == "miss"
    fresh = miss.parse().choices[0]
    assert fresh.finish_reason == "tool_calls"
    assert [c.model_dump() for c in fresh.message.tool_calls or ()] == [expected_call(messages)]
    served = until_hit(ask).parse().choices[0]
    assert served.finish_reason == "tool_calls"
    assert served.message.content is None
    assert [c.model_dump() for c in served.message.tool_calls or ()] == [expected_call(messages)]


def test_a_streamed_tool_call_is_cached_and_replayed_alike(client: openai.OpenAI) -> None:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "Which tents sleep four people?"}
    ]
    create = client.chat.completions.with_raw_response.create

    def ask(stream: bool) -> Any:
        return create(model="tooler", messages=messages, tools=TOOLS, stream=stream)

    miss = ask(stream=True)
    assert miss.headers["x-vetcache"] == "miss"
    assert streamed(miss) == ([expected_call(messages)], "tool_calls", "")
    hit = until_hit(lambda: ask(stream=True))
    assert streamed(hit) == ([expected_call(messages)], "tool_calls", "")
    as_json = ask(stream=False)  # the entry the stream assembled, as JSON
    assert as_json.headers["x-vetcache"] == "hit"
    choice = as_json.parse().choices[0]
    assert [c.model_dump() for c in choice.message.tool_calls or ()] == [expected_call(messages)]
    assert as_json.parse().usage is not None  # asked of the upstream although not by the client


def test_a_conversation_ending_in_a_tool_result_is_never_served(
    client: openai.OpenAI, fake_upstream: str
) -> None:
    asked: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "Is the blue backpack in stock?"}
    ]
    call = expected_call(asked)
    messages: list[Any] = [
        *asked,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": '{"in_stock": 3}'},
    ]
    before = httpx.get(f"{fake_upstream.removesuffix('/v1')}/fake/requests").json()
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(
            model="tooler", messages=messages, tools=TOOLS
        )
        assert raw.headers["x-vetcache"] == "bypass"
        assert raw.headers["x-vetcache-bypass"] == "no_user_text"
    after = httpx.get(f"{fake_upstream.removesuffix('/v1')}/fake/requests").json()
    key = "/chat/completions tool-call"
    assert after[key] - before.get(key, 0) == 2  # each asked the upstream
