"""Same answers on both lanes: the same requests through one gateway app, once to an alias
on the direct lane (``wire: openai``) and once to its twin on litellm's Router
(``wire: litellm``), both in front of the real fake-upstream process; what the client
receives is compared field by field.

Intended differences, the only ones allowed (``_normalized`` removes them):

- ``created``: each lane passes the upstream's own, which it stamps per call;
- field order: both are JSON objects; only keys and values are compared;
- ``service_tier: null`` on litellm's stream chunks: litellm's chunk model always carries it;
  the direct lane passes the upstream's chunk as it came (OpenAI omits it when unset);
- ``finish_reason: null`` (a broken upstream, the ``finish-null`` model): the direct lane
  passes the null on (the client sees what the model said), litellm's Router reports
  ``"stop"`` in a JSON answer;
- ``usage.*_tokens_details``: litellm adds them (mostly nulls) when the upstream sent none;
  the direct lane passes the upstream's usage as it came;
- a streamed refusal: the direct lane passes the upstream's ``delta.refusal`` chunk on;
  litellm's stream drops it (the client sees no refusal text), the only difference where the
  direct lane is the one that is right (``test_a_streamed_refusal_...``);
- how many chunks of a stream cut mid-way (``truncate``) arrive before its error event:
  the cut races the last writes on either lane, so only the chunks both got are compared;
- the usage chunk of a stream that did not ask for it: both lanes always ask the upstream
  for usage; where it shows (``choices: []`` with ``usage``) is compared, its removal for
  clients that did not ask is the chat path's (``proxy.answers``).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from tests.conftest import free_port, route

pytestmark = pytest.mark.integration

LANES = ("openai", "litellm")
MODELS = (
    "fake-gpt", "finish-null", "refusal", "empty", "function-call", "error-429", "error-503",
    "echo-500", "error-400", "error-404", "html", "no-choices", "truncate",
)  # fmt: skip
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi there"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a word up.",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    }
]


@pytest.fixture(scope="module")
def gateway(fake_upstream: str) -> Any:
    """One gateway app, each alias twice: ``<alias>.openai`` and ``<alias>.litellm``."""
    from proxy.app import create_app
    from proxy.settings import Settings

    refused = f"http://127.0.0.1:{free_port()}/v1"
    routes: list[dict[str, Any]] = []
    for wire in LANES:
        routes += [route(f"{m}.{wire}", m, fake_upstream, wire=wire) for m in MODELS]
        routes += [
            route(f"slow.{wire}", "sleep-3000", fake_upstream, wire=wire, timeout=0.3),
            route(f"down.{wire}", "fake-gpt", refused, wire=wire),
            route(f"flaky.{wire}", f"flaky-1-{wire}", fake_upstream, wire=wire, num_retries=1),
            route(f"primary.{wire}", "error-500", fake_upstream, wire=wire,
                  fallbacks=[f"fake-gpt.{wire}"]),
        ]  # fmt: skip
    settings = Settings(
        auth={"enabled": False}, access_log=False, cache={"enabled": False}, model_list=routes
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def _post(client: TestClient, alias: str, **extra: Any) -> tuple[int, Any]:
    response = client.post(
        "/v1/chat/completions", json={"model": alias, "messages": MESSAGES, **extra}
    )
    if not response.headers["content-type"].startswith("text/event-stream"):
        return response.status_code, response.json()
    events = [e.removeprefix("data: ") for e in response.text.split("\n\n") if e]
    return response.status_code, [e if e == "[DONE]" else orjson.loads(e) for e in events]


def _normalized(payload: Any) -> Any:
    """``payload`` less the intended differences (see the module)."""
    if isinstance(payload, list):
        return [_normalized(item) for item in payload]
    if not isinstance(payload, dict):
        return payload
    dropped = {"created", "completion_tokens_details", "prompt_tokens_details"}
    if payload.get("service_tier") is None:
        dropped.add("service_tier")
    return {k: _normalized(v) for k, v in payload.items() if k not in dropped}


def _both(client: TestClient, name: str, **extra: Any) -> tuple[Any, Any]:
    """What the client receives from each lane, status and payload, less the intended
    differences."""
    (status, direct), (status_too, translated) = (
        _post(client, f"{name}.{lane}", **extra) for lane in LANES
    )
    return (status, _normalized(direct)), (status_too, _normalized(translated))


@pytest.mark.parametrize("model", [m for m in MODELS if m != "finish-null"])
@pytest.mark.parametrize("stream", [False, True])
def test_both_lanes_answer_alike(gateway: TestClient, model: str, stream: bool) -> None:
    if stream and model == "refusal":
        pytest.skip("an intended difference: test_a_streamed_refusal_...")
    direct, translated = _both(gateway, model, stream=stream)
    if stream and model == "truncate":
        # How many chunks get through before the cut races the fake dropping the connection
        # mid-write, on either lane: the same error event ends both, after the same chunks.
        (status, chunks), (status_too, chunks_too) = direct, translated
        assert (status, chunks[-1]) == (status_too, chunks_too[-1])
        assert chunks[-1]["error"]["code"] == "upstream_unreachable"
        shared = min(len(chunks), len(chunks_too)) - 1
        assert shared >= 1 and chunks[:shared] == chunks_too[:shared]
        return
    assert direct == translated


def test_a_streamed_refusal_reaches_the_client_on_the_direct_lane(gateway: TestClient) -> None:
    (_, direct), (_, translated) = _both(gateway, "refusal", stream=True)
    refusals = [c for c in direct[:-1] if c["choices"] and "refusal" in c["choices"][0]["delta"]]
    assert [c["choices"][0]["delta"]["refusal"] for c in refusals] == ["I can't help with that."]
    assert direct[:-1][-1]["choices"][0]["finish_reason"] == "stop"
    # litellm's stream loses the refusal: the same chunks otherwise
    assert [c for c in direct if c not in refusals] == translated


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("extra", [{"tools": TOOLS}, {"stream_options": {"include_usage": True}},
                                   {"max_tokens": 3, "temperature": 0.1, "seed": 7}])  # fmt: skip
def test_both_lanes_pass_parameters_alike(
    gateway: TestClient, extra: dict[str, Any], stream: bool
) -> None:
    if not stream and "stream_options" in extra:
        pytest.skip("stream_options is for streams")
    direct, translated = _both(gateway, "fake-gpt", stream=stream, **extra)
    assert direct == translated


@pytest.mark.parametrize("name", ["slow", "down", "primary"])
@pytest.mark.parametrize("stream", [False, True])
def test_timeouts_unreachable_and_fallbacks_alike(
    gateway: TestClient, name: str, stream: bool
) -> None:
    direct, translated = _both(gateway, name, stream=stream)
    assert direct == translated


def test_retries_alike(gateway: TestClient, fake_upstream: str) -> None:
    import httpx

    direct, translated = _both(gateway, "flaky")
    assert direct[0] == translated[0] == 200
    counts = httpx.get(fake_upstream.removesuffix("/v1") + "/fake/requests").json()
    assert counts["/chat/completions flaky-1-openai"] == counts["/chat/completions flaky-1-litellm"]


def test_finish_null_is_passed_on_by_the_direct_lane_only(gateway: TestClient) -> None:
    direct, translated = _both(gateway, "finish-null")
    assert direct[1]["choices"][0]["finish_reason"] is None  # an intended difference
    assert translated[1]["choices"][0]["finish_reason"] == "stop"
    direct[1]["choices"][0]["finish_reason"] = "stop"
    assert direct == translated
