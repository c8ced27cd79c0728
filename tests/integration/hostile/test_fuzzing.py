"""schemathesis fuzzing from the gateway's own OpenAPI document: generated requests, valid
and invalid, get no 5xx and OpenAI's error shape; and the document says what the fuzzing
relies on."""

from __future__ import annotations

import copy
import time
from collections import Counter
from collections.abc import Callable
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

from proxy.app import create_app
from proxy.settings import Settings
from tests.integration.hostile.rig import (
    ADMIN,
    ADMIN_KEY,
    CLIENT_KEY,
    GOOD,
    JSON,
    assert_anthropic_error,
    assert_openai_error,
    fake_cache,
)

pytestmark = pytest.mark.integration


def openai_error_form(_ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """Every 4xx is OpenAI's error object, exactly its four keys (Anthropic's on its route)."""
    if 400 <= response.status_code < 500:
        if case.path in ANTHROPIC_PATHS:
            assert_anthropic_error(response)
        else:
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


MODEL_ROUTES = ("/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/messages")
"""Routes whose body names a model alias."""


def fuzz_schema(app: FastAPI, request_id: str | None, verdict_id: str | None) -> BaseSchema:
    """The app's schema, loaded over ASGI from ``/openapi.json``, with a few values the
    document cannot know also drawn: the configured model alias (else nearly every chat
    request stops at 404 model_not_found), and ids the feedback and review routes find; the
    negative cases still mutate them into anything."""
    loaded = schemathesis.openapi.from_asgi("/openapi.json", app)
    document = copy.deepcopy(loaded.raw_schema)
    paths = document["paths"]
    for route in MODEL_ROUTES:
        body = paths[route]["post"]["requestBody"]["content"]["application/json"]
        model = body["schema"]["properties"]["model"]
        body["schema"]["properties"]["model"] = one_of(model, "fake-gpt", "gpt-nope")
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


ANTHROPIC_PATHS = ("/v1/messages",)
OPERATIONS = [
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
    ("POST", "/v1/responses"),
    ("POST", "/v1/messages"),
    ("POST", "/v1/feedback"),
    ("GET", "/admin/config"),
    ("GET", "/admin/thresholds"),
    ("PUT", "/admin/thresholds/{namespace}"),
    ("DELETE", "/admin/entries/{entry_id}"),
    ("POST", "/admin/invalidate"),
    ("GET", "/admin/summary"),
    ("GET", "/admin/verdicts"),
    ("GET", "/admin/fp-rate"),
    ("GET", "/admin/tune"),
    ("GET", "/admin/review-queue"),
    ("GET", "/admin/hard-negatives"),
    ("POST", "/admin/verdicts/{verdict_id}/review"),
    ("GET", "/admin/rollout/{namespace}"),
    ("POST", "/admin/rollout/{namespace}/start"),
    ("POST", "/admin/rollout/{namespace}/cutover"),
    ("POST", "/admin/rollout/{namespace}/rollback"),
    ("POST", "/admin/rollout/{namespace}/abort"),
]
"""Every operation of the document under the model routes (chat, text, responses, messages),
feedback and admin (a test below keeps this list complete)."""
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
    if method == "POST" and path.startswith("/admin/rollout/"):
        expected = 409  # a step refused by the namespace's state: past auth and validation
    if path == "/admin/entries/{entry_id}" and cache == "cache on":
        expected = 404  # a well-formed id of no entry: past auth and validation
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
        ("post", "/v1/completions"): {"model", "prompt"},
        ("post", "/v1/responses"): {"model", "input"},
        ("post", "/v1/messages"): {"model", "max_tokens", "messages"},
        ("post", "/v1/embeddings"): {"model", "input"},
        ("post", "/v1/feedback"): {"request_id", "correct"},
        ("put", "/admin/thresholds/{namespace}"): {"threshold"},
        ("post", "/admin/verdicts/{verdict_id}/review"): {"correct"},
        ("post", "/admin/rollout/{namespace}/start"): {"version"},
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
        if path in (*MODEL_ROUTES, "/v1/feedback") or path.startswith("/admin/")
        for method in operations
    ]
    assert sorted(fuzzed) == sorted(OPERATIONS)
    for path, operations in paths.items():
        shape = "AnthropicErrorBody" if path in ANTHROPIC_PATHS else "ErrorBody"
        for operation in operations.values():
            assert "422" not in operation["responses"]
            assert operation["responses"]["4XX"]["content"]["application/json"]["schema"] == {
                "$ref": f"#/components/schemas/{shape}"
            }
