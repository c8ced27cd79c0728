"""The official ``anthropic`` package, pointed at a ``vetcache serve`` process (Redis Stack,
the fake upstream behind it), gets Anthropic's Messages API: through the cache, JSON and
streams, tools, and Anthropic's error shapes."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx
import pytest
import yaml

from proxy.fake_replies import make_answer
from tests.conftest import route, served
from tests.conftest import until_hit as served_hit

pytestmark = pytest.mark.integration

KEY = "sk-client-one"
TOOL = {
    "name": "lookup",
    "description": "Look a word up.",
    "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
}


@pytest.fixture(scope="module")
def gateway_url(
    redis_url: str, fake_upstream: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    config = yaml.safe_dump(
        {
            "redis_url": redis_url,
            "auth": {"api_keys": [{"tenant": "t1", "key": KEY}]},
            "cache": {"admit_tool_calls": True},
            "model_list": [
                route("fake-gpt", "fake-gpt", fake_upstream),
                route("via-litellm", "fake-gpt", fake_upstream, wire="litellm"),
                route("tools", "tool-call", fake_upstream),
                route("down", "error-503", fake_upstream),
                route("broken", "truncate", fake_upstream),
            ],
        }
    )
    with served(config, tmp_path_factory.mktemp("cfg"), timeout=180) as url:
        yield url


@pytest.fixture
def client(gateway_url: str) -> Iterator[anthropic.Anthropic]:
    """A client in a namespace of its own, so each test starts from an empty cache."""
    namespace = {"x-vetcache-namespace": f"m-{uuid.uuid4().hex[:8]}"}
    with anthropic.Anthropic(
        base_url=gateway_url, api_key=KEY, max_retries=0, default_headers=namespace
    ) as client:
        yield client


def until_hit(ask: Callable[[], tuple[str, Any]]) -> Any:
    """The answer of ``ask()`` (outcome, answer) once the cache answers it."""
    return served_hit(ask, lambda asked: asked[0])[1]


def create(client: anthropic.Anthropic, **params: Any) -> tuple[str, anthropic.types.Message]:
    raw = client.messages.with_raw_response.create(max_tokens=256, **params)
    return raw.headers["x-vetcache"], raw.parse()


def test_a_miss_then_a_hit_with_the_same_message(client: anthropic.Anthropic) -> None:
    messages: list[Any] = [{"role": "user", "content": "Name three prime numbers."}]
    outcome, first = create(client, model="fake-gpt", messages=messages)
    assert outcome == "miss"
    assert first.type == "message" and first.role == "assistant"
    assert first.model == "fake-gpt"
    assert [block.type for block in first.content] == ["text"]
    assert first.content[0].text == make_answer("fake-gpt", messages)  # type: ignore[union-attr]
    assert first.stop_reason == "end_turn"
    assert first.usage.input_tokens == 4 and first.usage.output_tokens > 0
    hit = until_hit(lambda: create(client, model="fake-gpt", messages=messages))
    assert hit.content == first.content
    assert hit.stop_reason == "end_turn"
    assert hit.usage.output_tokens == first.usage.output_tokens


def test_max_tokens_ends_with_stop_reason_max_tokens(client: anthropic.Anthropic) -> None:
    raw = client.messages.with_raw_response.create(
        model="fake-gpt",
        max_tokens=2,
        messages=[{"role": "user", "content": "Count to ten in words please."}],
    )
    message = raw.parse()
    assert message.stop_reason == "max_tokens"
    assert len(message.content[0].text.split(" ")) == 2  # type: ignore[union-attr]


def stream_once(
    client: anthropic.Anthropic, **params: Any
) -> tuple[str, anthropic.types.Message, str]:
    """One streamed request: the outcome header, the SDK's final message, the text seen."""
    with client.messages.stream(max_tokens=256, **params) as stream:
        outcome = stream.response.headers["x-vetcache"]
        text = "".join(stream.text_stream)
        return outcome, stream.get_final_message(), text


def test_a_stream_misses_then_hits(client: anthropic.Anthropic) -> None:
    messages: list[Any] = [{"role": "user", "content": "Tell me about the sea."}]
    outcome, first, text = stream_once(client, model="fake-gpt", messages=messages)
    assert outcome == "miss"
    assert text == make_answer("fake-gpt", messages)
    assert first.content[0].text == text  # type: ignore[union-attr]
    assert first.stop_reason == "end_turn"
    assert first.usage.output_tokens == len(text.split(" "))

    def again() -> tuple[str, Any]:
        outcome, message, seen = stream_once(client, model="fake-gpt", messages=messages)
        assert seen == text
        return outcome, message

    hit = until_hit(again)
    assert hit.content == first.content and hit.stop_reason == "end_turn"
    assert hit.usage.output_tokens == first.usage.output_tokens
    # A JSON request for the same message shares the entry: the key is the chat body's.
    assert create(client, model="fake-gpt", messages=messages)[0] == "hit"


@pytest.mark.parametrize("alias", ["fake-gpt", "via-litellm"], ids=["direct lane", "litellm lane"])
def test_both_upstream_lanes_answer_json_and_streams(
    client: anthropic.Anthropic, alias: str
) -> None:
    messages: list[Any] = [{"role": "user", "content": f"Which lane is {alias} on?"}]
    answer = make_answer("fake-gpt", messages)  # the same upstream model behind both aliases
    outcome, message = create(client, model=alias, messages=messages)
    assert outcome == "miss" and message.model == alias
    assert message.content[0].text == answer  # type: ignore[union-attr]
    assert message.usage.output_tokens == len(answer.split(" "))
    outcome, streamed, text = stream_once(client, model=alias, messages=[
        {"role": "user", "content": f"And streamed, which lane is {alias} on?"}
    ])  # fmt: skip
    assert outcome == "miss" and streamed.stop_reason == "end_turn"
    assert text.startswith("[fake-gpt] reply ") and streamed.usage.output_tokens > 0


def test_a_chat_request_and_a_message_share_an_entry(gateway_url: str) -> None:
    """Documented: the key is the translated chat body's, so a chat completion admitted
    through ``/v1/chat/completions`` answers the Anthropic request that translates to it."""
    namespace = {"x-vetcache-namespace": f"m-{uuid.uuid4().hex[:8]}"}
    question = "Which river runs through Paris?"
    chat = {
        "model": "fake-gpt",
        "max_tokens": 256,
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": question},
        ],
    }
    headers = {"authorization": f"Bearer {KEY}", **namespace}
    first = httpx.post(f"{gateway_url}/v1/chat/completions", json=chat, headers=headers)
    assert first.headers["x-vetcache"] == "miss"
    text = first.json()["choices"][0]["message"]["content"]
    with anthropic.Anthropic(
        base_url=gateway_url, api_key=KEY, max_retries=0, default_headers=namespace
    ) as client:
        message = until_hit(lambda: create(
            client, model="fake-gpt", system="Answer briefly.",
            messages=[{"role": "user", "content": question}],
        ))  # fmt: skip
    assert message.content[0].text == text


def test_the_system_prompt_and_tools_are_scope(client: anthropic.Anthropic) -> None:
    messages: list[Any] = [{"role": "user", "content": "What is the capital of France?"}]
    ask = {"model": "fake-gpt", "messages": messages, "system": "Answer briefly."}
    assert create(client, **ask)[0] == "miss"
    until_hit(lambda: create(client, **ask))
    assert create(client, **{**ask, "system": "Answer at length."})[0] == "miss"
    assert create(client, **ask, tools=[TOOL])[0] == "miss"


def test_a_tool_use_answer_in_json_and_stream(client: anthropic.Anthropic) -> None:
    messages: list[Any] = [{"role": "user", "content": "Look up 'gateway'."}]
    ask: dict[str, Any] = {"model": "tools", "messages": messages, "tools": [TOOL]}
    outcome, message = create(client, **ask)
    assert outcome == "miss"
    assert message.stop_reason == "tool_use"
    (block,) = message.content
    assert block.type == "tool_use" and block.name == "lookup"
    assert block.input == {"query": make_answer("tool-call", messages)}
    _, streamed, text = stream_once(client, **ask)
    assert text == "" and streamed.stop_reason == "tool_use"
    (call,) = streamed.content
    assert call.type == "tool_use" and call.input == block.input
    hit = until_hit(lambda: create(client, **ask))  # admit_tool_calls: the call is replayed
    assert hit.content == message.content and hit.stop_reason == "tool_use"


def test_a_tool_result_turn_reaches_the_upstream_as_chat(client: anthropic.Anthropic) -> None:
    """tool_use and tool_result blocks become chat's tool_calls and tool message (the fake
    upstream's answer digests what it received); a turn ending in a tool result is not
    cached, as on the chat route."""
    messages: list[Any] = [
        {"role": "user", "content": "Look up 'gateway'."},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "x"}}
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a door"}],
        },
    ]
    outcome, message = create(client, model="fake-gpt", messages=messages, tools=[TOOL])
    assert outcome == "bypass" and message.stop_reason == "end_turn"
    chat: list[dict[str, Any]] = [
        {"role": "user", "content": "Look up 'gateway'."},
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q": "x"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "a door"},
    ]
    assert message.content[0].text == make_answer("fake-gpt", chat)  # type: ignore[union-attr]


def test_errors_take_anthropic_shapes(client: anthropic.Anthropic, gateway_url: str) -> None:
    hello: list[Any] = [{"role": "user", "content": "hello"}]
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="nope", max_tokens=8, messages=hello)
    assert missing.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": missing.value.body["error"]["message"]},  # type: ignore[index]
    }
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.messages.create(model="fake-gpt", max_tokens=0, messages=hello)
    assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "max_tokens" in bad.value.message
    wrong = anthropic.Anthropic(base_url=gateway_url, api_key="sk-wrong", max_retries=0)
    with wrong, pytest.raises(anthropic.AuthenticationError) as denied:
        wrong.messages.create(model="fake-gpt", max_tokens=8, messages=hello)
    assert denied.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    with pytest.raises(anthropic.InternalServerError) as down:
        client.messages.create(model="down", max_tokens=8, messages=hello)
    assert down.value.status_code == 503
    assert down.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


def test_a_stream_broken_upstream_ends_with_an_error_event(gateway_url: str) -> None:
    body = {
        "model": "broken",
        "max_tokens": 64,
        "stream": True,
        "messages": [{"role": "user", "content": "one two three four five six"}],
    }
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    with httpx.stream("POST", f"{gateway_url}/v1/messages", json=body, headers=headers) as reply:
        assert reply.status_code == 200
        events = [line for line in reply.iter_lines() if line.startswith("event: ")]
    assert events[0] == "event: message_start"
    assert events[-1] == "event: error" and "event: message_stop" not in events
