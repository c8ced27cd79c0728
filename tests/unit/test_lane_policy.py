"""The direct lane's policy pieces, on fakes: which deployment, how long before a retry,
which routes take the lane, how an event stream is read, how failures map."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import aiohttp
import pytest

from audit.llm_client import import_litellm
from proxy.errors import InvalidRequest, UpstreamError, UpstreamInvalidReply, UpstreamTimeout
from proxy.lane_errors import LaneFailure, status_failure, transport_failure
from proxy.lane_policy import RETRY_AFTER_CAP_S, Deployment, choose, retry_delay
from proxy.lane_routes import direct_deployment
from proxy.lane_stream import events
from proxy.settings import ModelRoute


def _route(**extra: object) -> ModelRoute:
    values: dict[str, object] = {
        "model_name": "m", "model": "openai/up", "api_base": "http://127.0.0.1:9/v1",
    }  # fmt: skip
    return ModelRoute.model_validate({**values, **extra})


def _deployment(**extra: object) -> Deployment:
    found = direct_deployment(_route(**extra), import_litellm())
    assert found is not None
    return found


def test_choice_follows_the_weights() -> None:
    heavy, light = _deployment(weight=3.0), _deployment(weight=1.0)
    rng = random.Random(7)
    picks = [choose([heavy, light], rng) for _ in range(4000)]
    share = picks.count(heavy) / len(picks)
    assert 0.70 < share < 0.80  # 3:1


def test_a_deployment_cooling_down_is_skipped_until_its_cooldown_ends() -> None:
    first, second = _deployment(cooldown_s=10.0), _deployment(cooldown_s=10.0)
    first.failed(now=100.0)
    assert {id(choose([first, second], now=105.0)) for _ in range(50)} == {id(second)}
    assert id(first) in {id(choose([first, second], now=111.0)) for _ in range(200)}


def test_when_every_deployment_cools_down_the_lane_still_calls_one() -> None:
    only = _deployment(cooldown_s=10.0)
    other = _deployment(cooldown_s=10.0)
    only.failed(now=0.0)
    other.failed(now=0.0)
    assert choose([only, other], now=1.0) in (only, other)


def test_no_cooldown_by_default() -> None:
    deployment = _deployment()
    deployment.failed(now=50.0)
    assert deployment.cooling_until == 0.0


def test_backoff_doubles_with_jitter_and_retry_after_is_honoured_but_capped() -> None:
    assert retry_delay(1, None, lambda: 1.0) == pytest.approx(0.25)
    assert retry_delay(3, None, lambda: 1.0) == pytest.approx(1.0)
    assert retry_delay(3, None, lambda: 0.0) == pytest.approx(0.5)  # half is jittered
    assert retry_delay(20, None, lambda: 1.0) == pytest.approx(8.0)  # capped
    assert retry_delay(1, 2.0, lambda: 1.0) == pytest.approx(2.0)
    assert retry_delay(1, 3600.0, lambda: 1.0) == RETRY_AFTER_CAP_S


@pytest.mark.parametrize(
    ("extra", "lane"),
    [
        ({}, "direct"),
        ({"wire": "litellm"}, "litellm"),
        ({"params": {"api_version": "2024-01-01"}}, "litellm"),  # litellm-specific
        ({"params": {"organization": "org-1"}}, "direct"),
        ({"model": "anthropic/claude-3-haiku"}, "litellm"),
        ({"model": "azure/gpt-4o"}, "litellm"),
        ({"model": "hosted_vllm/llama"}, "direct"),
        ({"model": "groq/llama", "api_base": None, "api_key": "k"}, "direct"),
        ({"model": "groq/llama", "api_base": None}, "litellm"),  # litellm finds the key
    ],
)
def test_which_routes_take_the_direct_lane(extra: dict[str, object], lane: str) -> None:
    found = direct_deployment(_route(**extra), import_litellm())
    assert ("direct" if found is not None else "litellm") == lane


def test_the_direct_lane_sends_the_routes_key_and_headers_and_the_bare_model() -> None:
    deployment = _deployment(
        model="hosted_vllm/llama-3", api_key="sk-route",
        params={"organization": "org-1", "extra_headers": {"X-Team": "a"}},
    )  # fmt: skip
    assert deployment.model == "llama-3"
    assert deployment.base == "http://127.0.0.1:9/v1"
    assert deployment.headers["Authorization"] == "Bearer sk-route"
    assert deployment.headers["OpenAI-Organization"] == "org-1"
    assert deployment.headers["X-Team"] == "a"


async def _lines(*lines: bytes) -> AsyncIterator[bytes]:
    for line in lines:
        yield line


async def test_events_are_parsed_one_by_one_up_to_done() -> None:
    body = _lines(
        b": keep-alive\n", b"\n",
        b'data: {"choices": [], "n": 1}\n', b"\n",
        b'event: chunk\n', b'data: {"choices": [],\n', b'data: "n": 2}\r\n', b"\r\n",
        b"data: [DONE]\n", b"\n",
        b'data: {"choices": [], "n": 3}\n', b"\n",
    )  # fmt: skip
    assert [chunk["n"] async for chunk in events(body)] == [1, 2]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"data: <html>\n", UpstreamInvalidReply),
        (b'data: {"object": "x"}\n', UpstreamInvalidReply),
        (b'data: {"error": {"message": "overloaded", "code": "busy"}}\n', UpstreamError),
    ],
)
async def test_an_event_that_is_no_chunk_fails(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(LaneFailure) as raised:
        _ = [chunk async for chunk in events(_lines(data, b"\n"))]
    assert isinstance(raised.value.error, error)
    assert not raised.value.retryable


def test_failures_map_as_on_the_litellm_lane() -> None:
    body = b'{"error": {"message": "bad tool", "param": "tools", "code": "invalid_tools"}}'
    rejected = status_failure(422, body, {})
    assert isinstance(rejected.error, InvalidRequest) and not rejected.retryable
    assert (rejected.error.code, rejected.error.param) == ("invalid_tools", "tools")
    assert status_failure(400, b"<html>", {}).error.code == "upstream_rejected"
    limited = status_failure(429, b"{}", {"retry-after": "3"})
    assert limited.retryable and limited.retry_after == 3.0
    assert (limited.error.status_code, limited.error.message) == (429, "status 429")
    assert status_failure(409, b"", {}).retryable and status_failure(503, b"", {}).retryable
    assert not status_failure(404, b"", {}).retryable
    assert isinstance(transport_failure(TimeoutError()).error, UpstreamTimeout)
    refused = transport_failure(aiohttp.ServerDisconnectedError())
    assert refused.error.status_code == 502 and refused.retryable
