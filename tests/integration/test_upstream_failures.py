"""Upstream failures map to documented statuses, in OpenAI's error shape."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from tests.conftest import free_port, route

pytestmark = pytest.mark.integration

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture
def client(gateway_client: Callable[..., TestClient], fake_upstream: str) -> TestClient:
    refused = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    return gateway_client(
        model_list=[
            route("rate-limited", "error-429", fake_upstream),
            route("broken", "error-500", fake_upstream),
            route("overloaded", "error-503", fake_upstream),
            route("rejects", "error-400", fake_upstream),
            route("slow", "sleep-5000", fake_upstream, timeout=0.5),
            route("down", "fake-gpt", refused),
            route("primary", "error-500", fake_upstream, fallbacks=["backup"]),
            route("backup", "fake-gpt", fake_upstream),
            route("truncated", "truncate", fake_upstream),
            route("retried", "error-502", fake_upstream, num_retries=2),
        ]
    )


@pytest.mark.parametrize(
    ("alias", "status", "code"),
    [
        ("rate-limited", 429, "fake_429"),
        ("broken", 500, "fake_500"),
        ("overloaded", 503, "fake_503"),
        ("rejects", 400, "fake_400"),
        ("slow", 504, "upstream_timeout"),
        ("down", 502, "upstream_unreachable"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_failure_maps_to_status(
    client: TestClient, alias: str, status: int, code: str, stream: bool
) -> None:
    response = client.post(
        "/v1/chat/completions", json={"model": alias, "messages": MESSAGES, "stream": stream}
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code
    assert set(error) == {"message", "type", "param", "code"}


def test_upstream_message_is_passed_through(client: TestClient) -> None:
    response = client.post(
        "/v1/chat/completions", json={"model": "rate-limited", "messages": MESSAGES}
    )
    error = response.json()["error"]
    assert error["message"] == "simulated upstream error 429"
    assert error["type"] == "upstream_error"


def test_fallback_answers_when_primary_fails(client: TestClient) -> None:
    response = client.post("/v1/chat/completions", json={"model": "primary", "messages": MESSAGES})
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"].startswith("[fake-gpt] reply")


def test_stream_cut_midway_ends_with_an_error_event(client: TestClient) -> None:
    response = client.post(
        "/v1/chat/completions", json={"model": "truncated", "messages": MESSAGES, "stream": True}
    )
    assert response.status_code == 200  # the status line went out before the cut
    events = [e.removeprefix("data: ") for e in response.text.split("\n\n") if e]
    assert "[DONE]" not in events
    last = orjson.loads(events[-1])
    assert set(last["error"]) == {"message", "type", "param", "code"}
    assert last["error"]["code"] in ("upstream_unreachable", "upstream_timeout")


def test_retries_are_made_as_configured(client: TestClient, fake_upstream: str) -> None:
    counts = fake_upstream.removesuffix("/v1") + "/fake/requests"
    before = httpx.get(counts).json().get("/chat/completions error-502", 0)
    response = client.post("/v1/chat/completions", json={"model": "retried", "messages": MESSAGES})
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "fake_502"  # the upstream's 502, not ours
    after = httpx.get(counts).json()["/chat/completions error-502"]
    assert after - before == 3  # the call and its two retries


@pytest.mark.parametrize("model", ["html", "no-choices"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_reply_that_is_no_completion_is_a_502(
    gateway_client: Callable[..., TestClient], fake_upstream: str, model: str, stream: bool
) -> None:
    """A 200 with an HTML page or JSON without ``choices`` is the gateway's 502, and the
    reply (which quotes the answer) is not passed on."""
    client = gateway_client(model_list=[route("odd", model, fake_upstream)])
    response = client.post(
        "/v1/chat/completions", json={"model": "odd", "messages": MESSAGES, "stream": stream}
    )
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["code"] == "upstream_invalid_response" and error["type"] == "upstream_error"
    assert "hello" not in error["message"] and "Traceback" not in error["message"]
