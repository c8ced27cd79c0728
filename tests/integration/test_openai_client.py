"""The official ``openai`` package, pointed at a ``vetcache serve`` process, just works."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from proxy.fake_replies import make_answer
from tests.conftest import served, until_hit

pytestmark = pytest.mark.integration

MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Name three prime numbers."}
]


@pytest.fixture(scope="module")
def gateway_url(fake_upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = (
        "auth:\n  api_keys:\n    - {tenant: t1, key: sk-client-one}\n"
        "model_list:\n"
        f"  - {{model_name: fake-gpt, model: openai/fake-gpt, api_base: '{fake_upstream}'}}\n"
        f"  - {{model_name: fake-embed, model: openai/fake-embed, api_base: '{fake_upstream}'}}\n"
    )
    with served(config, tmp_path_factory.mktemp("cfg")) as url:
        yield url + "/v1"


@pytest.fixture
def client(gateway_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway_url, api_key="sk-client-one", max_retries=0) as client:
        yield client


def test_chat_completion(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="fake-gpt", messages=MESSAGES)
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == make_answer("fake-gpt", MESSAGES)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0


def test_streamed_chat_completion(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="fake-gpt",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == make_answer("fake-gpt", MESSAGES)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_embeddings(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="fake-embed", input=["first text", "second text"])
    assert [item.index for item in result.data] == [0, 1]
    assert all(len(item.embedding) == 384 for item in result.data)
    assert result.data[0].embedding != result.data[1].embedding
    norm = sum(v * v for v in result.data[0].embedding)
    assert abs(norm - 1.0) < 1e-5


def test_models_list(client: openai.OpenAI) -> None:
    assert sorted(m.id for m in client.models.list()) == ["fake-embed", "fake-gpt"]


def test_wrong_key_raises_authentication_error(gateway_url: str) -> None:
    with (
        openai.OpenAI(base_url=gateway_url, api_key="sk-wrong", max_retries=0) as client,
        pytest.raises(openai.AuthenticationError),
    ):
        client.chat.completions.create(model="fake-gpt", messages=MESSAGES)


def test_unknown_model_raises_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-unknown", messages=MESSAGES)
    assert caught.value.code == "model_not_found"


def test_a_streamed_miss_leaves_an_entry_with_usage(client: openai.OpenAI) -> None:
    """The client does not ask for usage; the upstream is asked anyway, so the entry has it
    and a JSON hit on it reports it (tokens saved are counted from it)."""
    messages: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "Which ocean is the deepest?"}
    ]
    create = client.chat.completions.with_raw_response.create
    miss = create(model="fake-gpt", messages=messages, stream=True)
    assert miss.headers["x-vetcache"] == "miss"
    assert all(chunk.usage is None for chunk in miss.parse())
    hit = until_hit(lambda: create(model="fake-gpt", messages=messages)).parse()
    assert hit.usage is not None
    assert hit.usage.completion_tokens == len(make_answer("fake-gpt", messages).split(" "))


def test_freshness_headers_through_the_sdk(client: openai.OpenAI) -> None:
    """``x-vetcache-ttl`` sets the life of the entry a miss admits; ``Cache-Control:
    max-age`` serves only entries young enough."""
    messages: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "How long is a marathon in kilometres?"}
    ]
    create = client.chat.completions.with_raw_response.create

    def ask(**headers: str) -> Any:
        return create(model="fake-gpt", messages=messages, extra_headers=headers)

    short = {"x-vetcache-ttl": "2"}  # every miss below would admit an entry of its own
    assert ask(**short).headers["x-vetcache"] == "miss"
    until_hit(lambda: ask(**short))
    stale = ask(**{"cache-control": "max-age=0, no-store"})
    assert (stale.headers["x-vetcache"], stale.headers["x-vetcache-refused"]) == ("miss", "stale")
    time.sleep(2.5)  # the entry's own TTL of 2 s ends: gone, not refused
    gone = ask(**{"cache-control": "no-store"})
    assert gone.headers["x-vetcache"] == "miss"
    assert "x-vetcache-refused" not in gone.headers
