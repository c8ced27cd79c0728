"""Hostile input: the gateway refuses it with a 4xx in OpenAI's error shape and keeps serving.

Two halves. schemathesis generates requests (valid and invalid) from the gateway's own
``/openapi.json`` for the chat, feedback and admin routes and sends them in-process, auth on;
no answer may be a 5xx, and every 4xx must be ``{"error": {message, type, param, code}}``.
Then hand-made requests no schema describes: bodies over the limit on every body route,
nesting, broken UTF-8, enormous message lists and messages, and control characters, very long
values and non-ASCII bytes in the headers the gateway reads. Malformed cases that
``test_bad_requests.py`` already covers are not repeated here.
"""

from __future__ import annotations

import copy
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, cast

import orjson
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import APIOperation, BaseSchema, Case
from schemathesis.checks import CheckContext, not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.transport import Response
from schemathesis.generation.modes import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cache.embedder import HashEmbedder
from cache.semantic import SemanticCache
from cache.settings import CacheSettings
from cache.stores.memory import MemoryStore
from proxy.app import create_app
from proxy.auth import hash_key
from proxy.routes.audits import MAX_WINDOW_S
from proxy.schemas import MAX_MESSAGES, USER_PART_TYPES
from proxy.settings import Settings
from proxy.wire import MAX_JSON_DEPTH
from tests.conftest import route

pytestmark = pytest.mark.integration

CLIENT_KEY = "sk-hostile-tenant"
ADMIN_KEY = "sk-hostile-admin"
CLIENT = {"authorization": f"Bearer {CLIENT_KEY}"}
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
JSON = {"content-type": "application/json", **CLIENT}
GOOD = {"model": "fake-gpt", "messages": [{"role": "user", "content": "hello"}]}
LIMIT = 1 << 20
"""max_body_bytes of the hand-made cases' gateway: room for 100k levels of nesting."""


@pytest.fixture(scope="module")
def auth_on(fake_upstream: str) -> Iterator[Callable[..., Settings]]:
    """Settings for a gateway in front of the fake upstream with a client key and an admin
    key; keyword args override. Module-scoped (one gateway serves many cases: each stops in
    about a second with the cache on), so built here with no ``VETCACHE_*`` variable set
    rather than by the function-scoped ``make_settings``."""
    with pytest.MonkeyPatch.context() as env:
        for name in [name for name in os.environ if name.startswith("VETCACHE_")]:
            env.delenv(name)

        def build(**overrides: Any) -> Settings:
            values: dict[str, Any] = {
                "auth": {"api_keys": [{"tenant": "hostile", "key_sha256": hash_key(CLIENT_KEY)}]},
                "admin_key_sha256": hash_key(ADMIN_KEY),
                "access_log": False,
                "cache": {"enabled": False},
                "model_list": [
                    route("fake-gpt", "fake-gpt", fake_upstream),
                    route("fake-embed", "fake-embed", fake_upstream),
                ],
            }
            return Settings(**{**values, **overrides})

        yield build


def fake_cache() -> SemanticCache:
    """The cache on an in-process store with vectors from hashes: no model to load."""
    return SemanticCache(CacheSettings(threshold=0.95), MemoryStore(), HashEmbedder())


def assert_openai_error(response: Any, status: int | None = None) -> dict[str, Any]:
    """``response`` is a 4xx (``status`` if given) with an OpenAI error body; its error."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    if status is not None:
        assert response.status_code == status, response.text[:500]
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    assert error["param"] is None or isinstance(error["param"], str)
    assert error["code"] is None or isinstance(error["code"], str)
    return error


# --- schemathesis, from the gateway's own OpenAPI document -----------------------------------


def openai_error_form(_ctx: CheckContext, response: Response, _case: Case[Any]) -> bool | None:
    """Every 4xx is OpenAI's error object, exactly its four keys."""
    if 400 <= response.status_code < 500:
        assert_openai_error(response)
    return None


CHECKS = [
    not_a_server_error,
    openai_error_form,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


KEYS = SchemathesisConfig.from_dict(
    {"auth": {"openapi": {"clientKey": {"bearer": CLIENT_KEY}, "adminKey": {"bearer": ADMIN_KEY}}}}
)
"""Each operation gets the key its documented ``security`` names (none in the cases where
schemathesis leaves it out on purpose: those must be 401s)."""


def one_of(schema: dict[str, Any], *values: str) -> dict[str, Any]:
    """``schema`` narrowed to ``values`` (an ``anyOf`` with the original would almost never
    be drawn: hypothesis shrinks towards its simplest branch)."""
    return {**schema, "enum": list(values)}


def fuzz_schema(app: FastAPI, request_id: str | None, verdict_id: str | None) -> BaseSchema:
    """The app's schema, loaded over ASGI from ``/openapi.json``, with a few values the
    document cannot know also drawn: the configured model alias (else nearly every chat
    request stops at 404 model_not_found), and ids the feedback and review routes find; the
    negative cases still mutate them into anything."""
    loaded = schemathesis.openapi.from_asgi("/openapi.json", app)
    document = copy.deepcopy(loaded.raw_schema)
    paths = document["paths"]
    chat = paths["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]
    model = chat["schema"]["properties"]["model"]
    chat["schema"]["properties"]["model"] = one_of(model, "fake-gpt", "gpt-nope")
    if request_id is not None:
        feedback = paths["/v1/feedback"]["post"]["requestBody"]["content"]["application/json"]
        fields = feedback["schema"]["properties"]
        fields["request_id"] = one_of(fields["request_id"], request_id)
    if verdict_id is not None:
        (parameter,) = paths["/admin/verdicts/{verdict_id}/review"]["post"]["parameters"]
        parameter["schema"] = one_of(parameter["schema"], verdict_id)
    schema = schemathesis.openapi.from_dict(document, config=KEYS)
    schema.app = app
    return schema


def seed(app: FastAPI) -> tuple[str, str]:
    """A cache hit served to the client key (its request id) and a judge's verdict on it
    (its id), made through the app's own routes."""
    with asgi.get_client(cast(asgi.ASGIApp, app)) as http:
        for _ in range(2):
            hit = http.post("/v1/chat/completions", data=orjson.dumps(GOOD), headers=JSON)
        assert hit.headers["x-vetcache"] == "hit", hit.headers
        verdicts: list[dict[str, Any]] = []
        for _ in range(200):  # the in-process worker judges the (burn-in) hit soon
            verdicts = http.get("/admin/verdicts", headers=ADMIN).json()["data"]
            if verdicts:
                break
            time.sleep(0.05)
    assert verdicts, "the hit was never judged"
    return hit.headers["x-request-id"], verdicts[0]["id"]


OPERATIONS = [
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/feedback"),
    ("GET", "/admin/config"),
    ("GET", "/admin/thresholds"),
    ("PUT", "/admin/thresholds/{namespace}"),
    ("GET", "/admin/summary"),
    ("GET", "/admin/verdicts"),
    ("GET", "/admin/fp-rate"),
    ("GET", "/admin/tune"),
    ("GET", "/admin/review-queue"),
    ("GET", "/admin/hard-negatives"),
    ("POST", "/admin/verdicts/{verdict_id}/review"),
]
"""Every operation of the document under the chat, feedback and admin routes (a test below
keeps this list complete)."""
FREE = ("/admin/config", "/admin/summary")
"""Admin routes that answer with the cache off."""
FUZZ = settings(
    max_examples=40,  # per generation mode
    deadline=None,
    derandomize=True,  # hypothesis draws the same way every run (schemathesis may still vary)
    database=None,
    suppress_health_check=list(HealthCheck),
)


# (schemathesis.pytest.from_fixture would parametrize this itself, but 4.32 reads the
# ``_nodeid`` pytest 9 no longer has; the operations are parametrized here instead. Its
# plugin still ends every ASGI lifespan after each test, so each test builds its gateway.)
@pytest.mark.parametrize("cache", ["cache off", "cache on"])
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_fuzzed_requests_get_no_5xx_and_openai_errors(
    auth_on: Callable[..., Settings], cache: str, method: str, path: str
) -> None:
    """Generated requests, valid and invalid, each with the key its route documents. With
    the cache off (the cheapest gateway), and on (in-process store, hashed vectors,
    in-process audits) so the admin and feedback routes get past their 409s into the cache,
    ledger and tuning code."""
    if cache == "cache on":
        app = create_app(auth_on(), cache=fake_cache())
        request_id, verdict_id = seed(app)
        operation = fuzz_schema(app, request_id, verdict_id)[path][method]
    else:
        operation = fuzz_schema(create_app(auth_on()), None, None)[path][method]
    statuses = {mode: fuzz(operation, mode) for mode in GenerationMode}
    # The valid input was meaningful: some of it was served, or (cache off) reached the
    # route's own 409 past auth and validation.
    needs_cache = path == "/v1/feedback" or (path.startswith("/admin/") and path not in FREE)
    expected = 409 if cache == "cache off" and needs_cache else 200
    assert statuses[GenerationMode.POSITIVE][expected], statuses


def fuzz(operation: APIOperation[Any, Any, Any, Any], mode: GenerationMode) -> Counter[int]:
    """Run the checks on ``FUZZ.max_examples`` cases of ``mode``; the statuses seen."""
    seen: Counter[int] = Counter()

    @FUZZ
    @given(case=operation.as_strategy(mode))
    def run(case: Case[Any]) -> None:
        seen[case.call_and_validate(checks=CHECKS).status_code] += 1

    run()
    return seen


def test_openapi_documents_bodies_keys_and_errors(auth_on: Callable[..., Settings]) -> None:
    """What the fuzzing above relies on: request bodies, header directives, who needs which
    key, and errors in OpenAI's shape (not FastAPI's 422)."""
    with TestClient(create_app(auth_on())) as client:
        document = client.get("/openapi.json").json()
    paths = document["paths"]
    bodies = {
        ("post", "/v1/chat/completions"): {"model", "messages"},
        ("post", "/v1/embeddings"): {"model", "input"},
        ("post", "/v1/feedback"): {"request_id", "correct"},
        ("put", "/admin/thresholds/{namespace}"): {"threshold"},
        ("post", "/admin/verdicts/{verdict_id}/review"): {"correct"},
    }
    for (method, path), required in bodies.items():
        schema = paths[path][method]["requestBody"]["content"]["application/json"]["schema"]
        assert set(schema["required"]) == required, path
        assert "$ref" not in orjson.dumps(schema).decode(), path
    chat = paths["/v1/chat/completions"]["post"]
    assert {p["name"] for p in chat["parameters"]} >= {
        "x-vetcache-namespace",
        "x-vetcache-threshold",
        "x-vetcache-admin-key",
    }
    assert chat["security"] == [{"clientKey": []}]
    assert paths["/admin/config"]["get"]["security"] == [{"adminKey": []}]
    assert set(document["components"]["securitySchemes"]) == {"clientKey", "adminKey"}
    fuzzed = [
        (method.upper(), path)
        for path, operations in paths.items()
        if path in ("/v1/chat/completions", "/v1/feedback") or path.startswith("/admin/")
        for method in operations
    ]
    assert sorted(fuzzed) == sorted(OPERATIONS)
    for operations in paths.values():
        for operation in operations.values():
            assert "422" not in operation["responses"]
            assert operation["responses"]["4XX"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorBody"
            }


# --- hand-made hostile requests ---------------------------------------------------------------


@pytest.fixture(scope="module")
def client(auth_on: Callable[..., Settings]) -> Iterator[TestClient]:
    """Auth on, a 1 MiB body limit, the cache and audits on (no model: hashed vectors), so
    every body route reads its body instead of stopping at a 409. One for the module: every
    case below also checks that it still serves afterwards."""
    app = create_app(auth_on(max_body_bytes=LIMIT), cache=fake_cache())
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def assert_still_serving(client: TestClient) -> None:
    response = client.post("/v1/chat/completions", headers=JSON, json=GOOD)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"].startswith("[fake-gpt] reply")


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
    assert error["param"] == "messages" and str(MAX_MESSAGES) in error["message"]
    assert_still_serving(roomy)


HEADER_VALUES: list[tuple[str, bytes]] = [
    ("CRLF then a header", b"shop\r\nx-vetcache-admin-key: " + ADMIN_KEY.encode()),
    ("trailing LF", b"shop\n"),
    ("lone CR", b"shop\rx"),
    ("NUL", b"shop\x00"),
    ("100k characters", b"7" * 100_000),
    ("UTF-8", "caf\u00e9".encode()),
    ("latin-1", b"caf\xe9"),
    ("Arabic-Indic digits", "\u0660.\u0669".encode()),
    ("empty", b""),
]


@pytest.mark.parametrize(("label", "value"), HEADER_VALUES, ids=[v[0] for v in HEADER_VALUES])
@pytest.mark.parametrize("header", ["x-vetcache-namespace", "x-vetcache-threshold"])
def test_hostile_directive_headers_are_refused(
    client: TestClient, header: str, label: str, value: bytes
) -> None:
    headers: dict[str, Any] = {**JSON, header: value}
    response = client.post("/v1/chat/completions", headers=headers, json=GOOD)
    assert assert_openai_error(response, 400)["param"] == header, label
    assert_still_serving(client)


@pytest.mark.parametrize(
    "value", ["1e-1", "nan", "-inf", "0_9", " 0.9", "0.9 ", "0x1p-1", "+.", "1" * 30]
)
def test_threshold_header_takes_plain_decimals_only(client: TestClient, value: str) -> None:
    headers = {**JSON, "x-vetcache-threshold": value}
    response = client.post("/v1/chat/completions", headers=headers, json=GOOD)
    assert assert_openai_error(response, 400)["param"] == "x-vetcache-threshold"


@pytest.mark.parametrize("value", ["0.99", "1", "1.", ".999", "+0.97", "-0.5"])
def test_threshold_header_accepts_decimals(client: TestClient, value: str) -> None:
    headers = {**JSON, "x-vetcache-threshold": value}
    response = client.post("/v1/chat/completions", headers=headers, json=GOOD)
    assert response.status_code == 200, response.text
    expected = max(0.95, float(value))  # without the admin key it can only raise
    assert float(response.headers["x-vetcache-threshold"]) == pytest.approx(expected)


@pytest.mark.parametrize(
    "value",
    [
        ADMIN_KEY.encode() + b"\r\n",
        ADMIN_KEY.encode() + b"\x00",
        b"\r\n" + ADMIN_KEY.encode(),
        ADMIN_KEY.encode() * 10_000,
        "sk-hostile-\u00e4dmin".encode(),
        b"sk-hostile-\xe4dmin",
    ],
    ids=["trailing CRLF", "NUL", "leading CRLF", "repeated 10k times", "UTF-8", "latin-1"],
)
def test_a_mangled_admin_key_header_never_loosens(client: TestClient, value: bytes) -> None:
    """Not the admin key: the request is served, but its threshold may only raise."""
    headers: dict[str, Any] = {**JSON, "x-vetcache-threshold": "-1", "x-vetcache-admin-key": value}
    response = client.post("/v1/chat/completions", headers=headers, json=GOOD)
    assert response.status_code == 200, response.text
    assert response.headers["x-vetcache-threshold"] == "0.9500"
    loosened = client.post(
        "/v1/chat/completions",
        headers={**JSON, "x-vetcache-threshold": "-1", "x-vetcache-admin-key": ADMIN_KEY},
        json=GOOD,
    )
    assert loosened.headers["x-vetcache-threshold"] == "-1.0000"  # the real key does


@pytest.mark.parametrize(
    "value",
    [
        f"Bearer {CLIENT_KEY}\r\nx-vetcache-admin-key: {ADMIN_KEY}".encode(),
        f"Bearer {CLIENT_KEY}\x00".encode(),
        b"Bearer " + b"k" * 100_000,
        "Bearer sk-hostile-t\u00e9nant".encode(),
        b"Bearer sk-hostile-t\xe9nant",
        b"\r\n",
    ],
    ids=["CRLF then a header", "NUL", "100k characters", "UTF-8", "latin-1", "only CRLF"],
)
def test_hostile_authorization_headers_get_401(client: TestClient, value: bytes) -> None:
    headers: dict[str, Any] = {"content-type": "application/json", "authorization": value}
    response = client.post("/v1/chat/completions", headers=headers, json=GOOD)
    assert_openai_error(response, 401)
    assert_still_serving(client)


@pytest.mark.parametrize(
    "value",
    [b"abc\n", b"abc\r\nset-cookie: a=b", b"abc\x00", b"a" * 129, "\u00e9t\u00e9".encode(), b""],
    ids=["trailing LF", "CRLF then a header", "NUL", "129 characters", "UTF-8", "empty"],
)
def test_a_hostile_request_id_is_replaced_not_echoed(client: TestClient, value: bytes) -> None:
    headers: dict[str, Any] = {**JSON, "x-request-id": value}
    response = client.post("/v1/chat/completions", headers=headers, json=GOOD)
    assert response.status_code == 200, response.text
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


@pytest.mark.parametrize("namespace", ["shop%0A", "shop%0D%0Ax", "shop%00", "a" * 65, "caf%C3%A9"])
def test_admin_threshold_namespaces_are_checked_whole(client: TestClient, namespace: str) -> None:
    response = client.put(
        f"/admin/thresholds/{namespace}",
        headers={"content-type": "application/json", **ADMIN},
        json={"threshold": 0.9},
    )
    assert assert_openai_error(response, 400)["code"] == "invalid_namespace"
    thresholds = client.get("/admin/thresholds", headers=ADMIN).json()
    assert thresholds["namespaces"] == {}


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


@pytest.mark.parametrize("window_s", [10**20, 10**400, MAX_WINDOW_S + 1])
def test_fp_rate_window_is_bounded(client: TestClient, window_s: int) -> None:
    """A window past 64 bits was a 500 (found by hand after schemathesis' fuzzing of
    /admin/fp-rate, which draws small integers)."""
    response = client.get(f"/admin/fp-rate?window_s={window_s}", headers=ADMIN)
    assert assert_openai_error(response, 400)["param"] == "window_s"
    assert client.get(f"/admin/fp-rate?window_s={MAX_WINDOW_S}", headers=ADMIN).status_code == 200
