"""``POST /v1/completions`` through a real ``vetcache serve`` (embedded cache, the bundled
model) and the fake upstream process, with the official ``openai`` client: passed through,
cached on the chat route's rules, replayed faithfully, errors in OpenAI's shape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

import httpx
import openai
import pytest

from proxy.fake_replies import make_answer
from tests.conftest import served, until_hit

pytestmark = pytest.mark.integration
T = TypeVar("T")


@pytest.fixture(scope="module")
def gateway(fake_upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (``.../v1``) of a gateway with the embedded cache."""
    config = (
        "auth:\n  api_keys:\n    - {tenant: t1, key: sk-client-one}\n"
        "model_list:\n"
        f"  - {{model_name: fake-gpt, model: openai/fake-gpt, api_base: '{fake_upstream}'}}\n"
        f"  - {{model_name: broken, model: openai/error-503, api_base: '{fake_upstream}'}}\n"
        f"  - {{model_name: via-litellm, model: openai/fake-gpt, api_base: '{fake_upstream}',"
        " wire: litellm}\n"
    )
    with served(config, tmp_path_factory.mktemp("cfg")) as url:
        yield url + "/v1"


@pytest.fixture
def client(gateway: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway, api_key="sk-client-one", max_retries=0) as client:
        yield client


def answer(prompt: str) -> str:
    """What the fake upstream answers to a text prompt."""
    return make_answer("fake-gpt", [{"role": "user", "content": prompt}])


def test_a_text_completion_is_answered_then_served_from_the_cache(client: openai.OpenAI) -> None:
    prompt = "Write a haiku about the tide coming in."
    create = client.completions.with_raw_response.create

    def ask() -> Any:
        return create(model="fake-gpt", prompt=prompt, max_tokens=50)

    miss = ask()
    assert miss.headers["x-vetcache"] == "miss"
    first = miss.parse()
    assert first.object == "text_completion"
    assert first.choices[0].text == answer(prompt)
    assert first.choices[0].finish_reason == "stop"
    hit = until_hit(ask)
    served = hit.parse()
    assert served.object == "text_completion"
    assert served.choices[0].text == first.choices[0].text
    assert served.usage is not None and served.usage.completion_tokens > 0
    assert served.id == first.id  # the entry's answer as the upstream wrote it


def test_a_streamed_miss_and_its_streamed_hit_spell_the_same_text(client: openai.OpenAI) -> None:
    prompt = "List the planets of the solar system."
    create = client.completions.with_raw_response.create

    def ask(usage: bool) -> Any:
        options: Any = {"include_usage": True} if usage else openai.NOT_GIVEN
        return create(model="fake-gpt", prompt=prompt, stream=True, stream_options=options)

    miss = ask(usage=False)
    assert miss.headers["x-vetcache"] == "miss"
    chunks = list(miss.parse())
    assert "".join(c.choices[0].text for c in chunks if c.choices) == answer(prompt)
    assert all(c.object == "text_completion" for c in chunks)
    assert all(c.usage is None for c in chunks)  # the client did not ask for usage
    assert chunks[-1].choices[0].finish_reason == "stop"
    hit = until_hit(lambda: ask(usage=True))
    replayed = list(hit.parse())
    assert "".join(c.choices[0].text for c in replayed if c.choices) == answer(prompt)
    usage = replayed[-1].usage
    # The upstream was asked for usage though the client was not: the entry carries it.
    assert usage is not None and usage.completion_tokens == len(answer(prompt).split(" "))


def test_text_and_chat_prompts_never_answer_each_other(client: openai.OpenAI) -> None:
    prompt = "Explain what a monsoon is."
    create = client.completions.with_raw_response.create
    until_hit(lambda: create(model="fake-gpt", prompt=prompt))
    chat = client.chat.completions.with_raw_response.create(
        model="fake-gpt", messages=[{"role": "user", "content": prompt}]
    )
    assert chat.headers["x-vetcache"] == "miss"


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"prompt": ["First prompt here.", "Second prompt here."]}, "prompt_not_text"),
        ({"prompt": [101, 2023, 102]}, "prompt_not_text"),
        ({"prompt": "Say something about owls.", "echo": True}, "echo"),
        ({"prompt": "Say something about bats.", "logprobs": 2}, "logprobs"),
    ],
)
def test_what_the_cache_cannot_replay_is_passed_through(
    client: openai.OpenAI, params: dict[str, Any], reason: str
) -> None:
    for _ in range(2):
        raw = client.completions.with_raw_response.create(model="fake-gpt", **params)
        assert raw.headers["x-vetcache"] == "bypass"
        assert raw.headers["x-vetcache-bypass"] == reason
    completion = raw.parse()
    prompts = params["prompt"] if isinstance(params["prompt"], list) else [params["prompt"]]
    several = isinstance(prompts[0], str) and len(prompts) > 1
    assert len(completion.choices) == (2 if several else 1)
    if reason == "echo":
        assert completion.choices[0].text == params["prompt"] + answer(params["prompt"])
    if reason == "logprobs":
        logprobs = completion.choices[0].logprobs
        assert logprobs is not None and logprobs.tokens == answer(params["prompt"]).split(" ")


def test_errors_are_openai_errors(client: openai.OpenAI, gateway: str) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.completions.create(model="gpt-nope", prompt="Hello there")
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.InternalServerError) as failed:
        client.completions.create(model="broken", prompt="Hello there")
    assert failed.value.status_code == 503
    bad = httpx.post(
        f"{gateway}/completions",
        json={"model": "fake-gpt"},
        headers={"authorization": "Bearer sk-client-one"},
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request_error"
    assert bad.json()["error"]["param"] == "prompt"
    unasked = httpx.post(
        f"{gateway}/completions",
        json={"model": "fake-gpt", "prompt": "Hi", "stream_options": {"include_usage": True}},
        headers={"authorization": "Bearer sk-client-one"},
    )
    assert unasked.status_code == 400
    assert unasked.json()["error"]["param"] == "stream_options"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gateway, api_key="sk-wrong", max_retries=0).completions.create(
            model="fake-gpt", prompt="Hello there"
        )


@pytest.mark.parametrize("alias", ["fake-gpt", "via-litellm"], ids=["direct lane", "litellm lane"])
def test_both_lanes_answer_text_completions_alike(client: openai.OpenAI, alias: str) -> None:
    prompt = f"Name a river in Europe ({alias})."
    create = client.completions.with_raw_response.create
    fresh = create(model=alias, prompt=prompt, max_tokens=50).parse()
    assert fresh.choices[0].text == answer(prompt)
    stream = create(model=alias, prompt=prompt + " Stream it.", stream=True).parse()
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == answer(prompt + " Stream it.")
    assert chunks[-1].choices[0].finish_reason == "stop"
