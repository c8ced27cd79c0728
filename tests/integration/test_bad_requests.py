"""Malformed and unauthorized requests get the right 4xx in OpenAI's error shape; never 5xx."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from cache.embedder import HashEmbedder
from cache.semantic import SemanticCache
from cache.settings import CacheSettings
from cache.stores.memory import MemoryStore
from proxy.auth import hash_key

pytestmark = pytest.mark.integration

KEY = "sk-test-tenant-a"
GOOD = {"model": "fake-gpt", "messages": [{"role": "user", "content": "hello"}]}
JSON = {"content-type": "application/json", "authorization": f"Bearer {KEY}"}


def body(**changes: Any) -> dict[str, Any]:
    return {**GOOD, **changes}


CASES: list[tuple[str, str, str, dict[str, str], Any, int, str | None, str | None]] = [
    # (name, method, path, headers, json body or raw bytes, status, param, code)
    (
        "no auth header",
        "POST",
        "/v1/chat/completions",
        {"content-type": "application/json"},
        GOOD,
        401,
        None,
        "missing_api_key",
    ),
    (
        "wrong key",
        "POST",
        "/v1/chat/completions",
        {**JSON, "authorization": "Bearer sk-nope"},
        GOOD,
        401,
        None,
        "invalid_api_key",
    ),
    (
        "basic scheme",
        "POST",
        "/v1/chat/completions",
        {**JSON, "authorization": "Basic abc"},
        GOOD,
        401,
        None,
        "invalid_api_key",
    ),
    (
        "non-JSON body",
        "POST",
        "/v1/chat/completions",
        JSON,
        b"{not json",
        400,
        None,
        "invalid_json",
    ),
    ("JSON array body", "POST", "/v1/chat/completions", JSON, b"[1, 2]", 400, None, "invalid_json"),
    (
        "wrong content type",
        "POST",
        "/v1/chat/completions",
        {**JSON, "content-type": "text/plain"},
        b'{"model": "fake-gpt"}',
        415,
        None,
        "unsupported_media_type",
    ),
    (
        "missing model",
        "POST",
        "/v1/chat/completions",
        JSON,
        {"messages": GOOD["messages"]},
        400,
        "model",
        None,
    ),
    (
        "model not a string",
        "POST",
        "/v1/chat/completions",
        JSON,
        body(model=42),
        400,
        "model",
        None,
    ),
    (
        "unknown model",
        "POST",
        "/v1/chat/completions",
        JSON,
        body(model="gpt-nope"),
        404,
        "model",
        "model_not_found",
    ),
    (
        "missing messages",
        "POST",
        "/v1/chat/completions",
        JSON,
        {"model": "fake-gpt"},
        400,
        "messages",
        None,
    ),
    (
        "messages not a list",
        "POST",
        "/v1/chat/completions",
        JSON,
        body(messages="hi"),
        400,
        "messages",
        None,
    ),
    (
        "empty messages",
        "POST",
        "/v1/chat/completions",
        JSON,
        body(messages=[]),
        400,
        "messages",
        None,
    ),
    (
        "invalid role",
        "POST",
        "/v1/chat/completions",
        JSON,
        body(messages=[{"role": "wizard", "content": "x"}]),
        400,
        "messages.0.role",
        None,
    ),
    (
        "user message without content",
        "POST",
        "/v1/chat/completions",
        JSON,
        body(messages=[{"role": "user"}]),
        400,
        "messages.0",
        None,
    ),
    (
        "stream not a bool",
        "POST",
        "/v1/chat/completions",
        JSON,
        body(stream="yes"),
        400,
        "stream",
        None,
    ),
    (
        "stream_options without stream",
        "POST",
        "/v1/chat/completions",
        JSON,
        body(stream_options={"include_usage": True}),
        400,
        "stream_options",
        None,
    ),
    (
        "body over the limit",
        "POST",
        "/v1/chat/completions",
        JSON,
        body(messages=[{"role": "user", "content": "x" * 5000}]),
        413,
        None,
        "body_too_large",
    ),
    (
        "embeddings without input",
        "POST",
        "/v1/embeddings",
        JSON,
        {"model": "fake-embed"},
        400,
        "input",
        None,
    ),
    (
        "embeddings bad encoding",
        "POST",
        "/v1/embeddings",
        JSON,
        {"model": "fake-embed", "input": "x", "encoding_format": "hex"},
        400,
        "encoding_format",
        None,
    ),
    (
        "embeddings unknown model",
        "POST",
        "/v1/embeddings",
        JSON,
        {"model": "nope", "input": "x"},
        404,
        "model",
        "model_not_found",
    ),
    ("unknown route", "GET", "/v1/nothing", JSON, None, 404, None, "unknown_url"),
    ("wrong method", "GET", "/v1/chat/completions", JSON, None, 405, None, "method_not_allowed"),
    (
        "unknown model lookup",
        "GET",
        "/v1/models/gpt-nope",
        JSON,
        None,
        404,
        "model",
        "model_not_found",
    ),
    ("admin with client key", "GET", "/admin/config", JSON, None, 401, None, "invalid_api_key"),
    ("admin without key", "GET", "/admin/config", {}, None, 401, None, "missing_api_key"),
]


@pytest.fixture
def client(gateway_client: Callable[..., TestClient]) -> TestClient:
    return gateway_client(
        auth={"api_keys": [{"tenant": "a", "key_sha256": hash_key(KEY)}]},
        admin_key_sha256=hash_key("sk-admin"),
        max_body_bytes=4096,
    )


@pytest.mark.parametrize(
    ("method", "path", "headers", "payload", "status", "param", "code"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_request_gets_openai_error(
    client: TestClient,
    method: str,
    path: str,
    headers: dict[str, str],
    payload: Any,
    status: int,
    param: str | None,
    code: str | None,
) -> None:
    content = payload if isinstance(payload, bytes) else None
    json_body = None if isinstance(payload, bytes) or payload is None else payload
    if json_body is not None:
        import orjson

        content = orjson.dumps(json_body)
    response = client.request(method, path, headers=headers, content=content)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    assert response.headers["x-request-id"]


def test_chunked_body_over_the_limit_is_refused(client: TestClient) -> None:
    def chunks() -> Any:
        yield b'{"model": "fake-gpt", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}]}'

    response = client.post("/v1/chat/completions", headers=JSON, content=chunks())
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


def test_good_key_and_admin_key_are_accepted(client: TestClient) -> None:
    response = client.post("/v1/chat/completions", headers=JSON, json=GOOD)
    assert response.status_code == 200, response.text
    config = client.get("/admin/config", headers={"authorization": "Bearer sk-admin"})
    assert config.status_code == 200
    assert config.json()["auth"]["api_keys"][0]["tenant"] == "a"


def test_client_cannot_steer_litellm_through_the_body(client: TestClient) -> None:
    """litellm's own kwargs (api_base, api_key, mock_response...) sent by a client must not
    redirect the call or fake the answer."""
    hostile = body(
        api_base="http://127.0.0.1:1/v1",
        api_key="sk-stolen",
        mock_response="pwned",
        num_retries=9,
    )
    response = client.post("/v1/chat/completions", headers=JSON, json=hostile)
    assert response.status_code == 200, response.text
    content = response.json()["choices"][0]["message"]["content"]
    assert content.startswith("[fake-gpt] reply") and "pwned" not in content


@pytest.mark.parametrize("path", ["verdicts", "fp-rate", "hard-negatives"])
def test_admin_namespace_filters_are_checked(
    gateway_client: Callable[..., TestClient], path: str
) -> None:
    cache = SemanticCache(CacheSettings(), MemoryStore(), HashEmbedder())  # audits on, no model
    client = gateway_client(cache=cache, admin_key_sha256=hash_key("sk-admin"))
    admin = {"authorization": "Bearer sk-admin"}
    for bad in ("a%0Ab", "x" * 65, "a%20b"):
        response = client.get(f"/admin/{path}?namespace={bad}", headers=admin)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == {
            "message": "namespace must be 1-64 characters of letters, digits and ._-",
            "type": "invalid_request_error",
            "param": "namespace",
            "code": "invalid_namespace",
        }  # the one rule and the one error body, as for the header and the admin path
    assert client.get(f"/admin/{path}?namespace=shop", headers=admin).status_code == 200


MESSAGE = {"model": "fake-gpt", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
ANTHROPIC = {"content-type": "application/json", "x-api-key": KEY}
ANTHROPIC_CASES: list[tuple[str, str, dict[str, str], Any, int, str]] = [
    # (name, path, headers, json body or raw bytes, status, Anthropic error type)
    ("no key", "/v1/messages", {"content-type": "application/json"}, MESSAGE, 401,
     "authentication_error"),
    ("wrong x-api-key", "/v1/messages", {**ANTHROPIC, "x-api-key": "sk-nope"}, MESSAGE, 401,
     "authentication_error"),
    ("not json", "/v1/messages", ANTHROPIC, b"{nope", 400, "invalid_request_error"),
    ("no max_tokens", "/v1/messages", ANTHROPIC, {**MESSAGE, "max_tokens": None}, 400,
     "invalid_request_error"),
    ("system role in messages", "/v1/messages", ANTHROPIC,
     {**MESSAGE, "messages": [{"role": "system", "content": "x"}]}, 400, "invalid_request_error"),
    ("tool_use without input", "/v1/messages", ANTHROPIC,
     {**MESSAGE, "messages": [{"role": "user", "content": [{"type": "tool_use", "id": "t",
                                                             "name": "f"}]}]},
     400, "invalid_request_error"),
    ("only blocks the translation drops", "/v1/messages", ANTHROPIC,
     {**MESSAGE, "messages": [{"role": "user", "content": [{"type": "mystery"}]}]}, 400,
     "invalid_request_error"),
    ("tool_choice tool without name", "/v1/messages", ANTHROPIC,
     {**MESSAGE, "tool_choice": {"type": "tool"}}, 400, "invalid_request_error"),
    ("unknown model", "/v1/messages", ANTHROPIC, {**MESSAGE, "model": "nope"}, 404,
     "not_found_error"),
    ("text/plain", "/v1/messages", {**ANTHROPIC, "content-type": "text/plain"}, b"{}", 415,
     "invalid_request_error"),
    ("too large", "/v1/messages", ANTHROPIC, {**MESSAGE, "system": "x" * 5000}, 413,
     "invalid_request_error"),
    ("unknown path under it", "/v1/messages/count_tokens", ANTHROPIC, MESSAGE, 404,
     "not_found_error"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "headers", "payload", "status", "kind"),
    [case[1:] for case in ANTHROPIC_CASES],
    ids=[case[0] for case in ANTHROPIC_CASES],
)
def test_bad_request_on_messages_gets_anthropic_error(
    client: TestClient,
    path: str,
    headers: dict[str, str],
    payload: Any,
    status: int,
    kind: str,
) -> None:
    """``/v1/messages`` answers Anthropic's error shape, same statuses, whatever refused
    the request (auth, reading the body, validation, the model alias, the router)."""
    content = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    response = client.post(path, headers=headers, content=content)
    assert response.status_code == status, response.text
    answer = response.json()
    assert set(answer) == {"type", "error"} and answer["type"] == "error"
    assert set(answer["error"]) == {"type", "message"}
    assert answer["error"]["type"] == kind and answer["error"]["message"]


def test_x_api_key_is_accepted_on_every_client_route(client: TestClient) -> None:
    response = client.post("/v1/chat/completions", headers={"x-api-key": KEY}, json=GOOD)
    assert response.status_code == 200, response.text
    response = client.post("/v1/messages", headers={"x-api-key": KEY}, json=MESSAGE)
    assert response.status_code == 200, response.text
    assert response.json()["type"] == "message"
    denied = client.post("/v1/chat/completions", headers={"x-api-key": "sk-nope"}, json=GOOD)
    assert denied.status_code == 401 and set(denied.json()["error"]) >= {"code", "param"}
