"""``POST /v1/responses`` through a real ``vetcache serve``, driven by the official ``openai``
package: stateless requests cached (JSON and streams, tool calls), stateful ones passed
through to the fake upstream's own Responses API, errors in OpenAI's shapes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, TypeVar

import httpx
import openai
import pytest
from openai.types.responses import FunctionToolParam

from proxy.fake_replies import make_answer, tool_call
from tests.conftest import served, until_hit

pytestmark = pytest.mark.integration
T = TypeVar("T")

KEY = "sk-client-one"
OTHER_KEY = "sk-client-two"
TOOLS: list[FunctionToolParam] = [
    {
        "type": "function",
        "name": "lookup",
        "description": "Look a word up.",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        "strict": False,
    }
]


@pytest.fixture(scope="module")
def gateway(fake_upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    routes = "".join(
        f"  - {{model_name: {alias}, model: openai/{model}, api_base: '{fake_upstream}'}}\n"
        for alias, model in (
            ("fake-gpt", "fake-gpt"),
            ("tool-call", "tool-call"),
            ("broken", "error-503"),
            ("truncate", "truncate"),
            ("slow", "slow-stream-250"),
        )
    )
    config = (
        f"auth:\n  api_keys:\n    - {{tenant: t1, key: {KEY}}}\n"
        f"    - {{tenant: t2, key: {OTHER_KEY}}}\nmodel_list:\n{routes}"
    )
    with served(config, tmp_path_factory.mktemp("cfg")) as url:
        yield url


@pytest.fixture
def client(gateway: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway + "/v1", api_key=KEY, max_retries=0) as client:
        yield client


def upstream_received(fake_upstream: str) -> dict[str, int]:
    counts: dict[str, int] = httpx.get(fake_upstream.removesuffix("/v1") + "/fake/requests").json()
    return counts


def chat_answer(text: str, instructions: str | None = None) -> str:
    """What the fake upstream answers the chat request a Responses request translates to."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": instructions}] * bool(
        instructions
    )
    return make_answer("fake-gpt", [*messages, {"role": "user", "content": text}])


def raw_hit(client: openai.OpenAI, **ask: Any) -> Any:
    """The raw response to ``ask``, once answered from the cache."""
    return until_hit(
        lambda: client.responses.with_raw_response.create(**ask),
        lambda raw: str(raw.headers["x-vetcache"]),
    )


def test_miss_then_hit(client: openai.OpenAI) -> None:
    ask = {"model": "fake-gpt", "input": "Name three prime numbers.", "instructions": "Be brief."}
    first = client.responses.with_raw_response.create(**ask)  # type: ignore[call-overload]
    assert first.headers["x-vetcache"] == "miss"
    second = raw_hit(client, **ask)
    response = second.parse()
    assert response.object == "response"
    assert response.status == "completed"
    assert response.id.startswith("resp_")
    assert response.output_text == chat_answer("Name three prime numbers.", "Be brief.")
    assert response.output_text == first.parse().output_text
    assert response.usage is not None and response.usage.output_tokens > 0


def test_a_chat_request_asking_the_same_shares_the_entry(client: openai.OpenAI) -> None:
    text = "What is the capital of Peru?"
    client.chat.completions.create(model="fake-gpt", messages=[{"role": "user", "content": text}])
    raw = raw_hit(client, model="fake-gpt", input=text)
    assert raw.parse().output_text == chat_answer(text)


def test_instructions_and_tools_are_scope(client: openai.OpenAI) -> None:
    """Other instructions or other tools: another scope, so the same input misses."""
    text = "Name the longest river in Africa."
    asks: list[dict[str, Any]] = [
        {"instructions": "Be brief."},
        {"instructions": "Answer in French."},
        {"instructions": "Be brief.", "tools": TOOLS},
    ]
    for ask in asks:
        raw = client.responses.with_raw_response.create(model="fake-gpt", input=text, **ask)
        assert raw.headers["x-vetcache"] == "miss", ask
    raw = raw_hit(client, model="fake-gpt", input=text, **asks[1])
    assert raw.parse().output_text == chat_answer(text, "Answer in French.")


def test_another_tenant_never_gets_the_entry(gateway: str, client: openai.OpenAI) -> None:
    ask: dict[str, Any] = {"model": "fake-gpt", "input": "Which tenant am I?"}
    client.responses.create(**ask)
    raw_hit(client, **ask)  # tenant t1's entry is in
    with openai.OpenAI(base_url=gateway + "/v1", api_key=OTHER_KEY, max_retries=0) as other:
        raw = other.responses.with_raw_response.create(**ask)
    assert raw.headers["x-vetcache"] == "miss"


def test_stream_miss_then_hit(client: openai.OpenAI) -> None:
    text = "Stream the names of four oceans, please."

    def streamed() -> tuple[str, list[Any]]:
        with client.responses.with_streaming_response.create(
            model="fake-gpt", input=text, stream=True
        ) as raw:
            assert raw.headers["content-type"].startswith("text/event-stream")
            return raw.headers["x-vetcache"], list(raw.parse())

    first = streamed()
    assert first[0] == "miss"
    for _, events in (first, until_hit(streamed, lambda answer: answer[0])):
        kinds = [event.type for event in events]
        assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
        deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
        assert len(deltas) > 1
        assert "".join(deltas) == chat_answer(text)
        assert [e.sequence_number for e in events] == list(range(len(events)))


def test_stream_helper_gives_the_final_response(client: openai.OpenAI) -> None:
    text = "Which planet is the largest?"
    with client.responses.stream(model="fake-gpt", input=text) as stream:
        final = stream.get_final_response()
    assert final.status == "completed"
    assert final.output_text == chat_answer(text)
    assert final.usage is not None and final.usage.total_tokens > 0


def test_tool_call_answer_is_a_function_call_item(client: openai.OpenAI) -> None:
    response = client.responses.create(model="tool-call", input="Look up 'x'.", tools=TOOLS)
    call = response.output[0]
    assert call.type == "function_call"
    made = tool_call(make_answer("tool-call", [{"role": "user", "content": "Look up 'x'."}]))
    expected = ("lookup", made["function"]["arguments"], made["id"])
    assert (call.name, call.arguments, call.call_id) == expected
    with client.responses.stream(model="tool-call", input="Look up 'x'.", tools=TOOLS) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    streamed = final.output[0]
    assert streamed.type == "function_call"
    assert (streamed.name, streamed.arguments, streamed.call_id) == expected


def test_function_call_output_items_are_read(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="fake-gpt",
        tools=TOOLS,
        input=[
            {"role": "user", "content": "Look up 'x'."},
            {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "x is a letter"},
        ],
    )
    assert response.status == "completed"
    assert response.output_text.startswith("[fake-gpt] reply ")


@pytest.mark.parametrize(
    "state",
    [
        {"previous_response_id": "resp_earlier"},
        {"store": True},
        {"background": True},
        {"conversation": "conv_123"},
    ],
)
def test_stateful_requests_pass_through(
    client: openai.OpenAI, fake_upstream: str, state: dict[str, Any]
) -> None:
    before = upstream_received(fake_upstream).get("/responses fake-gpt", 0)
    text = f"Stateful question {sorted(state)}"
    for _ in range(2):
        raw = client.responses.with_raw_response.create(
            model="fake-gpt", input=text, metadata={"app": "tests"}, **state
        )
        assert raw.headers["x-vetcache"] == "bypass"
        assert raw.headers["x-vetcache-bypass"] == "stateful"
    assert upstream_received(fake_upstream)["/responses fake-gpt"] == before + 2
    response = raw.parse()
    assert response.metadata == {"app": "tests"}  # a field litellm does not take: extra_body
    assert response.object == "response"
    if "previous_response_id" in state:
        assert response.previous_response_id == "resp_earlier"
        assert response.output_text == chat_answer(text)


def test_stateful_stream_passes_through(client: openai.OpenAI, fake_upstream: str) -> None:
    before = upstream_received(fake_upstream).get("/responses fake-gpt", 0)
    with client.responses.with_streaming_response.create(
        model="fake-gpt", input="Stream what you stored.", store=True, stream=True
    ) as raw:
        assert raw.headers["x-vetcache-bypass"] == "stateful"
        events = list(raw.parse())
    assert events[-1].type == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == chat_answer("Stream what you stored.")
    assert upstream_received(fake_upstream)["/responses fake-gpt"] == before + 1


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model="no-such-model", input="hi")
    assert caught.value.code == "model_not_found"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "fake-gpt"}, "input"),
        ({"model": "fake-gpt", "input": []}, "input"),
        ({"model": "fake-gpt", "input": 42}, "input"),
        ({"model": "fake-gpt", "input": ["hi"]}, "input"),
        ({"model": "fake-gpt", "input": "hi", "stream": "yes"}, "stream"),
        ({"model": "fake-gpt", "input": [{"type": "no_such_item"}]}, "input"),
    ],
)
def test_bad_body_is_400(gateway: str, body: dict[str, Any], param: str) -> None:
    reply = httpx.post(
        gateway + "/v1/responses", json=body, headers={"authorization": f"Bearer {KEY}"}
    )
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_bad_body_raises_bad_request_in_the_sdk(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="fake-gpt", input=[])


@pytest.mark.parametrize("state", [{}, {"store": True}])
def test_upstream_error_keeps_its_status_and_code(
    client: openai.OpenAI, state: dict[str, Any]
) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        client.responses.create(model="broken", input="hi", **state)
    assert caught.value.status_code == 503
    assert caught.value.code == "fake_503"
    assert caught.value.type == "upstream_error"


def test_stream_broken_midway_ends_with_response_failed(client: openai.OpenAI) -> None:
    stream = client.responses.create(
        model="truncate", input="one two three four five six seven eight", stream=True
    )
    events = list(stream)
    assert events[0].type == "response.created"
    assert [e.type for e in events[-2:]] == ["error", "response.failed"]
    failed = events[-1]
    assert failed.type == "response.failed"
    assert failed.response.status == "failed"
    assert failed.response.error is not None
    assert str(failed.response.error.code) == "upstream_unreachable"  # the gateway's own code


def test_a_client_hanging_up_mid_stream_releases_the_upstream_stream(
    gateway: str, fake_upstream: str
) -> None:
    model = "slow-stream-250"
    before = upstream_received(fake_upstream).get(f"stream aborted {model}", 0)
    body = {"model": "slow", "input": "one two three four five six seven eight", "stream": True}
    with httpx.stream(
        "POST",
        gateway + "/v1/responses",
        json=body,
        headers={"authorization": f"Bearer {KEY}"},
        timeout=10,
    ) as response:
        assert response.status_code == 200
        assert next(response.iter_lines()) == "event: response.created"
    aborted = 0
    for _ in range(60):  # eight words 250 ms apart: finished would take ~1.75 s
        aborted = upstream_received(fake_upstream).get(f"stream aborted {model}", 0) - before
        if aborted:
            break
        time.sleep(0.05)
    assert aborted == 1
    assert f"stream finished {model}" not in upstream_received(fake_upstream)


def test_stateful_stream_broken_midway_ends_with_response_failed(
    client: openai.OpenAI, gateway: str
) -> None:
    def failed_requests() -> float:
        for line in httpx.get(gateway + "/metrics").text.splitlines():
            if line.startswith("vetcache_requests_total{") and all(
                label in line for label in ('model="truncate"', 'outcome="error"')
            ):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = failed_requests()
    stream = client.responses.create(
        model="truncate", input="one two three four five six", stream=True, store=True
    )
    events = list(stream)
    assert events[0].type == "response.created"
    assert [e.type for e in events[-2:]] == ["error", "response.failed"]
    failed = events[-1]
    assert failed.type == "response.failed" and failed.response.status == "failed"
    assert failed_requests() == before + 1


def test_a_follow_up_names_a_stored_response_by_the_id_the_gateway_gave(
    client: openai.OpenAI,
) -> None:
    """litellm encodes the deployment into a stored response's id; the follow-up reaches the
    upstream with the upstream's own id (the fake echoes it back)."""
    stored = client.responses.create(model="fake-gpt", input="Remember: 42.", store=True)
    follow_up = client.responses.create(
        model="fake-gpt", input="What did I ask you to remember?", previous_response_id=stored.id
    )
    assert follow_up.previous_response_id is not None
    assert follow_up.previous_response_id.startswith("resp_fake")
    assert stored.id != follow_up.previous_response_id
