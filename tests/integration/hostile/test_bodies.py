"""Hand-made hostile bodies: over the size limit on every body route, deeply nested, broken
UTF-8, compressed, too many messages, and content parts litellm would trip over."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from proxy.auth import hash_key
from proxy.schemas import MAX_CONTENT_PARTS, MAX_MESSAGES, USER_PART_TYPES
from proxy.wire import MAX_JSON_CONTAINERS, MAX_JSON_DEPTH
from tests.integration.hostile.rig import (
    ADMIN,
    CLIENT,
    CLIENT_KEY,
    GOOD,
    JSON,
    LIMIT,
    assert_anthropic_error,
    assert_openai_error,
    assert_still_serving,
)

pytestmark = pytest.mark.integration


def chat_with(raw_fragment: bytes) -> bytes:
    """A valid chat body with ``"extra": <raw_fragment>`` added (passed to the upstream)."""
    return orjson.dumps(GOOD)[:-1] + b',"extra":' + raw_fragment + b"}"


def nested(depth: int) -> bytes:
    """``depth`` arrays, one inside the other."""
    return b"[" * depth + b"]" * depth


BODY_ROUTES = [
    ("POST", "/v1/chat/completions", CLIENT),
    ("POST", "/v1/embeddings", CLIENT),
    ("POST", "/v1/feedback", CLIENT),
    ("PUT", "/admin/thresholds/shop", ADMIN),
    ("POST", "/admin/verdicts/some-verdict/review", ADMIN),
]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize(("method", "path", "key"), BODY_ROUTES, ids=[r[1] for r in BODY_ROUTES])
def test_every_body_route_refuses_a_body_over_the_limit(
    client: TestClient, method: str, path: str, key: dict[str, str], chunked: bool
) -> None:
    oversized = b'{"comment": "' + b"x" * LIMIT + b'"}'

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(oversized), 64 * 1024):
            yield oversized[start : start + 64 * 1024]

    headers = {"content-type": "application/json", **key}
    content = chunks() if chunked else oversized
    response = client.request(method, path, headers=headers, content=content)
    assert assert_openai_error(response, 413)["code"] == "body_too_large"
    assert_still_serving(client)


MESSAGE = {"model": "fake-gpt", "max_tokens": 8, "messages": GOOD["messages"]}


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize(
    "body",
    [
        b'{"system": "' + b"x" * LIMIT + b'"}',
        orjson.dumps(MESSAGE)[:-1] + b',"x":' + nested(65) + b"}",
    ],
    ids=["over the limit", "too deep"],
)
def test_anthropics_route_refuses_hostile_bodies_in_its_shape(
    client: TestClient, body: bytes, chunked: bool
) -> None:
    """``/v1/messages`` reads its body as the chat route does, and answers Anthropic's error."""

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    headers = {"content-type": "application/json", "x-api-key": CLIENT_KEY}
    response = client.post("/v1/messages", headers=headers, content=chunks() if chunked else body)
    assert response.status_code in (400, 413)
    assert assert_anthropic_error(response)["type"] == "invalid_request_error"
    assert client.post("/v1/messages", headers=headers, json=MESSAGE).json()["type"] == "message"
    assert_still_serving(client)


def test_a_declared_length_over_the_limit_is_refused_before_reading(client: TestClient) -> None:
    headers = {**JSON, "content-length": str(10**15)}
    response = client.post("/v1/chat/completions", headers=headers, content=orjson.dumps(GOOD))
    assert assert_openai_error(response, 413)["code"] == "body_too_large"
    assert_still_serving(client)


def test_a_body_exactly_at_the_limit_is_served(client: TestClient) -> None:
    """The limit refuses bodies over it, not at it: the largest single message that fits."""
    shell = orjson.dumps({**GOOD, "messages": [{"role": "user", "content": ""}]})
    content = "y" * (LIMIT - len(shell))
    body = orjson.dumps({**GOOD, "messages": [{"role": "user", "content": content}]})
    assert len(body) == LIMIT
    response = client.post("/v1/chat/completions", headers=JSON, content=body)
    assert response.status_code == 200, response.text[:500]
    assert content[:100] in response.json()["choices"][0]["message"]["content"]
    over = body[:-2] + b'y"}]}'
    refused = client.post("/v1/chat/completions", headers=JSON, content=over)
    assert assert_openai_error(refused, 413)["code"] == "body_too_large"
    assert_still_serving(client)


@pytest.mark.parametrize(
    "body",
    [
        nested(100_000),
        b"[" * 100_000,
        b'{"a":' * 100_000,
        chat_with(nested(1000)),  # within orjson's 1024 levels: used to be a 500 upstream
        chat_with(nested(MAX_JSON_DEPTH)),
        orjson.dumps(GOOD).replace(
            b'"hello"', b'[{"type":"text","text":"x","deep":' + nested(300) + b"}]"
        ),
        orjson.dumps({**GOOD, "stream": True})[:-1] + b',"tools":' + nested(500) + b"}",
    ],
    ids=[
        "100k arrays",
        "100k unclosed arrays",
        "100k unclosed objects",
        "1000 levels in an unknown field",
        "one level too deep",
        "300 levels in a content part",
        "500 levels in tools, streamed",
    ],
)
def test_deep_nesting_is_refused(client: TestClient, body: bytes) -> None:
    response = client.post("/v1/chat/completions", headers=JSON, content=body)
    assert assert_openai_error(response, 400)["code"] == "invalid_json"
    assert_still_serving(client)


def test_nesting_up_to_the_limit_is_served(client: TestClient) -> None:
    """The body object is level 1, so its field may hold MAX_JSON_DEPTH - 1 levels."""
    body = chat_with(nested(MAX_JSON_DEPTH - 1))
    response = client.post("/v1/chat/completions", headers=JSON, content=body)
    assert response.status_code == 200, response.text[:500]


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "fake-gpt", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
        b'{"model": "fake-gpt", "messages": [{"role": "user", "content": "\xc0\xaf"}]}',
        b'{"model": "fake-gpt", "messages": [{"role": "user", "content": "\xed\xa0\x80"}]}',
        b'{"model": "fake-gpt", "messages": [{"role": "user", "content": "\\ud800"}]}',
        b'{"model\xff": "fake-gpt", "messages": []}',
        b'{"model": "fake-gpt", "messages": [{"role": "user", "content": "caf\xe9"}]}',
    ],
    ids=[
        "invalid bytes",
        "overlong encoding",
        "encoded surrogate",
        "escaped lone surrogate",
        "invalid byte in a key",
        "latin-1 text",
    ],
)
def test_invalid_utf8_is_refused(client: TestClient, body: bytes) -> None:
    response = client.post("/v1/chat/completions", headers=JSON, content=body)
    assert assert_openai_error(response, 400)["code"] == "invalid_json"
    assert_still_serving(client)


def test_a_gzipped_body_is_not_inflated(client: TestClient) -> None:
    """No Content-Encoding is decoded: a compressed body (a zip bomb, say) is just bad JSON."""
    import gzip

    bomb = gzip.compress(b"[" * 10_000_000)
    assert len(bomb) < LIMIT
    headers = {**JSON, "content-encoding": "gzip"}
    response = client.post("/v1/chat/completions", headers=headers, content=bomb)
    assert assert_openai_error(response, 400)["code"] == "invalid_json"
    assert_still_serving(client)


def tiny_messages(count: int) -> bytes:
    return orjson.dumps(
        {"model": "fake-gpt", "messages": [{"role": "user", "content": ""}] * count}
    )


def test_too_many_messages_are_refused(client: TestClient) -> None:
    body = tiny_messages(MAX_MESSAGES + 1)
    assert len(body) < LIMIT
    response = client.post("/v1/chat/completions", headers=JSON, content=body)
    assert assert_openai_error(response, 400)["param"] == "messages"
    assert_still_serving(client)


def test_200k_messages_are_refused_by_size_then_by_count(
    client: TestClient, gateway_client: Callable[..., TestClient]
) -> None:
    """Over the size limit; under a roomier one, 200k message objects are more arrays and
    objects than a body may hold, refused before it is parsed; 50k, by their count."""
    body = tiny_messages(200_000)
    response = client.post("/v1/chat/completions", headers=JSON, content=body)
    assert assert_openai_error(response, 413)["code"] == "body_too_large"
    assert_still_serving(client)
    roomy = gateway_client(
        auth={"api_keys": [{"tenant": "hostile", "key_sha256": hash_key(CLIENT_KEY)}]},
        max_body_bytes=16 << 20,
    )
    response = roomy.post("/v1/chat/completions", headers=JSON, content=body)
    error = assert_openai_error(response, 400)
    assert error["code"] == "invalid_json" and str(MAX_JSON_CONTAINERS) in error["message"]
    response = roomy.post("/v1/chat/completions", headers=JSON, content=tiny_messages(50_000))
    error = assert_openai_error(response, 400)
    assert error["code"] == "too_many_messages" and error["param"] == "messages"
    assert str(MAX_MESSAGES) in error["message"]
    assert_still_serving(roomy)


def test_the_message_count_is_checked_before_the_model(client: TestClient) -> None:
    """One message too many, the last of them of no known role: the count refuses it, so
    the validator never looks at more messages than allowed."""
    messages: list[Any] = [{"role": "user", "content": ""}] * MAX_MESSAGES
    messages.append({"role": "bogus", "content": "x"})
    body = orjson.dumps({"model": "fake-gpt", "messages": messages})
    assert len(body) > 64 * 1024  # decoded off the event loop
    response = client.post("/v1/chat/completions", headers=JSON, content=body)
    error = assert_openai_error(response, 400)
    assert (error["code"], error["param"]) == ("too_many_messages", "messages"), error
    assert_still_serving(client)


def test_too_many_content_parts_are_refused(client: TestClient) -> None:
    parts = [{"type": "text", "text": "x"}] * (MAX_CONTENT_PARTS // 2 + 1)
    message = {"role": "user", "content": parts}
    body = orjson.dumps({"model": "fake-gpt", "messages": [message, message]})
    response = client.post("/v1/chat/completions", headers=JSON, content=body)
    error = assert_openai_error(response, 400)
    assert (error["code"], error["param"]) == ("too_many_content_parts", "messages"), error
    assert str(MAX_CONTENT_PARTS) in error["message"]
    assert_still_serving(client)


def empty_arrays(count: int) -> bytes:
    return b"[" + b",".join([b"[]"] * (count - 1)) + b"]"


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/embeddings"])
def test_a_body_with_more_arrays_and_objects_than_allowed_is_refused(
    client: TestClient, path: str
) -> None:
    """Counted on the raw bytes before parsing (orjson holds the event loop ~200 ns for each
    empty array); a body with exactly the allowed number is served."""
    body = orjson.dumps({**GOOD, "model": "fake-embed", "input": "x"} if "embed" in path else GOOD)
    own = body.count(b"[") + body.count(b"{")
    at_limit = body[:-1] + b',"extra":' + empty_arrays(MAX_JSON_CONTAINERS - own) + b"}"
    assert at_limit.count(b"[") + at_limit.count(b"{") == MAX_JSON_CONTAINERS
    assert client.post(path, headers=JSON, content=at_limit).status_code == 200
    over = at_limit[:-2] + b",[]]}"
    error = assert_openai_error(client.post(path, headers=JSON, content=over), 400)
    assert error["code"] == "invalid_json" and "arrays and objects" in error["message"]
    assert_still_serving(client)


PARTS: list[tuple[str, dict[str, Any]]] = [
    ("empty part", {}),
    ("anthropic part", {"type": "tool_result", "content": "x"}),
    ("type not a string", {"type": 7}),
    ("no type", {"text": "no type"}),
    ("image_url missing", {"type": "image_url"}),
    ("image_url without url", {"type": "image_url", "image_url": {"detail": "low"}}),
    ("file missing", {"type": "file"}),
    ("file not an object", {"type": "file", "file": "x"}),
    ("input_audio missing", {"type": "input_audio"}),
    ("text not a string", {"type": "text", "text": ["x"]}),
]


@pytest.mark.parametrize("part", [p[1] for p in PARTS], ids=[p[0] for p in PARTS])
def test_user_content_parts_need_a_known_type_and_payload(
    client: TestClient, part: dict[str, Any]
) -> None:
    """litellm refuses or trips over these before calling the upstream (a KeyError inside
    it, reported as a connection error): the gateway answered 502 upstream_unreachable for
    the client's mistake (found by schemathesis)."""
    parts = [{"type": "text", "text": "hello"}, part]
    body = {**GOOD, "messages": [{"role": "user", "content": parts}]}
    response = client.post("/v1/chat/completions", headers=JSON, json=body)
    error = assert_openai_error(response, 400)
    assert error["param"] == "messages.0" and "content part 1" in error["message"]
    assert_still_serving(client)


def test_user_part_types_are_the_ones_litellm_forwards(client: TestClient) -> None:
    from litellm.types.llms.openai import ValidUserMessageContentTypes

    assert sorted(USER_PART_TYPES) == sorted(ValidUserMessageContentTypes)
    parts = [
        {"type": "text", "text": "hello"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "image_url", "image_url": "https://example.com/b.png"},
    ]
    body = {**GOOD, "messages": [{"role": "user", "content": parts}]}
    assert client.post("/v1/chat/completions", headers=JSON, json=body).status_code == 200


@pytest.mark.parametrize("key", [{}, {"authorization": "Bearer sk-wrong"}], ids=["none", "wrong"])
def test_the_key_is_checked_before_the_body_is_read(
    client: TestClient, key: dict[str, str]
) -> None:
    """A body over the limit (which reading would refuse with 413) and deeper than allowed
    (which decoding would refuse with 400) gets 401: nothing of it was read."""
    body = b'{"a":' + nested(MAX_JSON_DEPTH + 1) + b',"b":"' + b"x" * LIMIT + b'"}'
    headers = {"content-type": "application/json", **key}
    response = client.post("/v1/chat/completions", headers=headers, content=body)
    assert_openai_error(response, 401)
    assert_still_serving(client)
