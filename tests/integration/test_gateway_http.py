"""The gateway's HTTP contract beyond errors: SSE framing, request ids, probes, admin."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest
from fastapi.testclient import TestClient

from proxy.auth import hash_key
from proxy.fake_replies import make_answer
from tests.conftest import route

pytestmark = pytest.mark.integration

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}]


@pytest.fixture
def client(gateway_client: Callable[..., TestClient]) -> TestClient:
    return gateway_client(admin_key_sha256=hash_key("sk-admin"))


def test_sse_framing_matches_openai(client: TestClient) -> None:
    with client.stream(
        "POST",
        "/v1/chat/completions",
        json={"model": "fake-gpt", "messages": MESSAGES, "stream": True},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    assert raw.endswith("data: [DONE]\n\n")
    events = raw.split("\n\n")[:-1]
    assert all(event.startswith("data: ") for event in events)
    chunks = [orjson.loads(event.removeprefix("data: ")) for event in events[:-1]]
    ids = {chunk["id"] for chunk in chunks}
    assert len(ids) == 1
    first = chunks[0]["choices"][0]
    assert first["delta"]["role"] == "assistant" and first["finish_reason"] is None
    assert set(chunks[0]) >= {"id", "object", "created", "model", "choices"}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == make_answer("fake-gpt", MESSAGES)
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }


def test_json_answer_has_openai_fields_only(client: TestClient) -> None:
    answer = client.post(
        "/v1/chat/completions", json={"model": "fake-gpt", "messages": MESSAGES}
    ).json()
    assert set(answer) == {
        "id",
        "object",
        "created",
        "model",
        "system_fingerprint",
        "choices",
        "usage",
    }
    assert answer["choices"][0]["message"] == {
        "role": "assistant",
        "content": make_answer("fake-gpt", MESSAGES),
    }


def test_unknown_fields_reach_the_upstream(client: TestClient) -> None:
    body = {"model": "fake-gpt", "messages": MESSAGES, "max_tokens": 3, "seed": 7, "vendor_x": 1}
    answer = client.post("/v1/chat/completions", json=body).json()
    assert answer["choices"][0]["finish_reason"] == "length"  # max_tokens was honoured upstream


def test_request_id_is_echoed_or_generated(client: TestClient) -> None:
    given = client.get("/healthz", headers={"x-request-id": "req-123.abc"})
    assert given.headers["x-request-id"] == "req-123.abc"
    generated = client.get("/healthz")
    assert len(generated.headers["x-request-id"]) == 32
    hostile = client.get("/healthz", headers={"x-request-id": "a b\tc" + "z" * 200})
    assert hostile.headers["x-request-id"] != "a b\tc" + "z" * 200
    error = client.post("/v1/chat/completions", headers={"x-request-id": "err-1"}, content=b"{")
    assert error.status_code == 415 and error.headers["x-request-id"] == "err-1"
    streamed = client.post(
        "/v1/chat/completions",
        headers={"x-request-id": "stream-1"},
        json={"model": "fake-gpt", "messages": MESSAGES, "stream": True},
    )
    assert streamed.headers["x-request-id"] == "stream-1"


def test_probes(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_the_root_points_to_the_docs_and_the_page(client: TestClient) -> None:
    """``GET /`` (a browser or curl at the base URL) says where to go, not a bare 404."""
    root = client.get("/")
    assert root.status_code == 200
    links = root.json()
    assert (links["docs"], links["ui"], links["openapi"]) == ("/docs", "/ui", "/openapi.json")
    for path in ("/docs", "/openapi.json", "/healthz"):
        assert client.get(path).status_code == 200, path


def test_api_docs_can_be_turned_off(gateway_client: Callable[..., TestClient]) -> None:
    """``api_docs: false`` (the production examples): the reference is not served to anyone
    without a key; the rest of the gateway is."""
    client = gateway_client(api_docs=False)
    for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "unknown_url"
    links = client.get("/").json()
    assert links["docs"] is None and links["openapi"] is None and links["ui"] == "/ui"
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/chat/completions", {"model": "gpt-nope", "messages": MESSAGES}),
        ("POST", "/v1/embeddings", {"model": "gpt-nope", "input": "x"}),
        ("GET", "/v1/models/gpt-nope", None),
    ],
)
def test_an_unknown_model_names_the_configured_aliases(
    client: TestClient, method: str, path: str, body: dict[str, object] | None
) -> None:
    response = client.request(method, path, json=body)
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert error["message"] == (
        "The model 'gpt-nope' does not exist; this gateway serves: fake-gpt, fake-embed "
        "(GET /v1/models lists them)"
    )


def test_admin_config_masks_secrets(
    gateway_client: Callable[..., TestClient], fake_upstream: str
) -> None:
    """URL userinfo anywhere (Redis, a route's or the judge's ``api_base``), fields and
    ``params`` entries named like secrets, and key hashes are masked; the rest is shown."""
    host = fake_upstream.removeprefix("http://")
    client = gateway_client(
        admin_key_sha256=hash_key("sk-admin"),
        auth={"api_keys": [{"tenant": "a", "key_sha256": hash_key("sk-a")}]},
        redis_url="redis://:hunter2-redis@127.0.0.1:1/0",
        model_list=[
            route("fake-gpt", "fake-gpt", f"http://user:hunter2-base@{host}",
                  params={"organization": "org-1", "AzureADToken": "hunter2-token",
                          "extra_headers": {"Authorization": "Bearer hunter2-bearer"},
                          "client_secret": "hunter2-secret", "api_version": "2024-06-01"}),
        ],
        audit={"llm": {"api_base": "https://judge:hunter2-judge@judge.example/v1"}},
    )  # fmt: skip
    response = client.get("/admin/config", headers={"authorization": "Bearer sk-admin"})
    assert response.status_code == 200
    assert "hunter2" not in response.text
    for digest in (hash_key("sk-admin"), hash_key("sk-a")):
        assert digest not in response.text
    config = response.json()
    assert config["redis_url"] == "redis://**********@127.0.0.1:1/0"
    assert config["audit"]["llm"]["api_base"] == "https://**********@judge.example/v1"
    (fake,) = config["model_list"]
    assert fake["model_name"] == "fake-gpt" and "api_key" not in fake
    assert fake["api_base"] == f"http://**********@{host}"
    assert fake["params"]["organization"] == "org-1"
    assert fake["params"]["api_version"] == "2024-06-01"
    assert config["auth"]["api_keys"] == [{"tenant": "a", "key_sha256": "**********",
                                           "key": None}]  # fmt: skip
    assert config["admin_key_sha256"] == "**********"


def test_embeddings_pass_through(client: TestClient) -> None:
    body = {"model": "fake-embed", "input": ["some text", "more"], "encoding_format": "float"}
    response = client.post("/v1/embeddings", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["object"] == "list"
    assert [len(item["embedding"]) for item in result["data"]] == [384, 384]
    assert result["usage"]["prompt_tokens"] == 3


def test_parameter_litellm_refuses_is_a_clear_400(client: TestClient) -> None:
    body = {"model": "fake-embed", "input": "x", "dimensions": 16}
    response = client.post("/v1/embeddings", json=body)
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "dimensions" in message and not message.startswith("litellm")
