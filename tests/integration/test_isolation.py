"""Who may do what: every admin route needs the admin key, whatever the method or path;
a client key cannot loosen a threshold. Tenants sharing a namespace share neither its
capacity, nor its statistics, nor its metric labels, nor each other's request ids. (No hit
crosses a scope: the hypothesis property in tests/unit/test_semantic_cache.py and the tenant
test in test_admission.py; feedback only on one's own requests:
tests/integration/test_audit_redis.py.)"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cache.embedder import HashEmbedder
from cache.semantic import SemanticCache
from cache.settings import CacheSettings
from cache.stores.redis import RedisStore
from proxy.auth import hash_key
from tests.conftest import route

pytestmark = pytest.mark.integration

CLIENT_KEY = "sk-isolation-client"
ADMIN_KEY = "sk-isolation-admin"


@pytest.fixture
def client(gateway_client: Callable[..., TestClient]) -> TestClient:
    return gateway_client(
        auth={"api_keys": [{"tenant": "a", "key_sha256": hash_key(CLIENT_KEY)}]},
        admin_key_sha256=hash_key(ADMIN_KEY),
    )


def admin_routes(client: TestClient) -> list[tuple[str, str]]:
    """(method, path) of every route under /admin in the app's OpenAPI document, path
    parameters filled in."""
    paths = client.get("/openapi.json").json()["paths"]
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "x", path))
        for path, operations in paths.items()
        if path.startswith("/admin")
        for method in operations
    ]


def test_the_admin_api_is_unreachable_without_the_admin_key(client: TestClient) -> None:
    routes = admin_routes(client)
    assert len(routes) >= 10  # the whole admin API, not a sample
    for method, path in routes:
        for headers in (
            {},
            {"authorization": f"Bearer {CLIENT_KEY}"},  # a valid client key is not enough
            {"x-vetcache-admin-key": CLIENT_KEY},
            {"authorization": f"Bearer {ADMIN_KEY}x"},
        ):
            response = client.request(method, path, headers=headers, json={"value": 0.5})
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.json()["error"]["type"] == "authentication_error"
    # ...and with it the same routes answer (an unknown id: 404, never 401).
    for method, path in routes:
        response = client.request(
            method, path, headers={"authorization": f"Bearer {ADMIN_KEY}"}, json={"value": 0.5}
        )
        assert response.status_code != 401, (method, path)


# Two tenants on one Redis, tenant a with two keys (a2: another app of the same tenant).
KEYS = {"a": ("a", "sk-iso-a"), "a2": ("a", "sk-iso-a2"), "b": ("b", "sk-iso-b")}
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
Reply = Any  # TestClient's response type (httpx's or its successor's)


@pytest.fixture
def tenants(
    gateway_client: Callable[..., TestClient], fake_upstream: str, redis_url: str
) -> Callable[..., TestClient]:
    """A gateway on Redis (cache, audit jobs, verdicts) with auth on for tenants a and b;
    keyword args override the cache settings. Hash embeddings: no meaning, so a prompt hits
    only itself unless the threshold lets anything in the scope hit."""

    def build(**cache: Any) -> TestClient:
        settings = CacheSettings(**{"threshold": 0.9999, "lookup_budget_ms": 2000, **cache})
        return gateway_client(
            cache=SemanticCache(settings, RedisStore(redis_url), HashEmbedder()),
            redis_url=redis_url,
            audit={"sample_rate": 0.0, "burn_in": 0},
            auth={"api_keys": [{"tenant": t, "key_sha256": hash_key(k)} for t, k in KEYS.values()]},
            admin_key_sha256=hash_key(ADMIN_KEY),
            model_list=[route("fake-gpt", "fake-gpt", fake_upstream)],
        )

    return build


def ask(client: TestClient, who: str, namespace: str, text: str, **headers: str) -> Reply:
    body = {"model": "fake-gpt", "messages": [{"role": "user", "content": text}]}
    headers = {"authorization": f"Bearer {KEYS[who][1]}", "x-vetcache-namespace": namespace,
               **headers}  # fmt: skip
    reply = client.post("/v1/chat/completions", headers=headers, json=body)
    assert reply.status_code == 200, reply.text
    return reply


def until_hit(client: TestClient, who: str, namespace: str, text: str, **headers: str) -> Reply:
    """Ask until the cache answers (admission runs after the answer); that hit."""
    deadline = time.monotonic() + 10
    while (reply := ask(client, who, namespace, text, **headers)).headers["x-vetcache"] != "hit":
        assert time.monotonic() < deadline, f"{text!r} was never admitted"
        time.sleep(0.02)
    return reply


def feedback(client: TestClient, who: str, request_id: str, correct: bool) -> Reply:
    return client.post(
        "/v1/feedback",
        headers={"authorization": f"Bearer {KEYS[who][1]}"},
        json={"request_id": request_id, "correct": correct, "comment": "checked"},
    )


def test_one_tenant_filling_a_namespace_evicts_none_of_anothers_entries(
    tenants: Callable[..., TestClient],
) -> None:
    client = tenants(max_entries_per_namespace=20)
    namespace = f"cap-{uuid.uuid4().hex[:8]}"
    assert ask(client, "a", namespace, "a's question").headers["x-vetcache"] == "miss"
    until_hit(client, "a", namespace, "a's question")
    for i in range(40):  # b's unique prompts: twice the cap
        assert ask(client, "b", namespace, f"b's question {i}").headers["x-vetcache"] == "miss"
        until_hit(client, "b", namespace, f"b's question {i}")
    assert ask(client, "a", namespace, "a's question").headers["x-vetcache"] == "hit"
    assert ask(client, "b", namespace, "b's question 0").headers["x-vetcache"] == "miss"
    assert ask(client, "b", namespace, "b's question 39").headers["x-vetcache"] == "hit"


def test_a_tenants_feedback_moves_only_its_own_statistics(
    tenants: Callable[..., TestClient],
) -> None:
    client = tenants(threshold=-1.0)  # semantic hits: exact repeats are a rate of their own
    namespace = f"fp-{uuid.uuid4().hex[:8]}"
    for who in ("a", "b"):
        ask(client, who, namespace, f"{who}'s question")
        until_hit(client, who, namespace, f"{who}'s question")
    hits = [ask(client, "b", namespace, "b's question, please") for _ in range(16)]
    assert {h.headers["x-vetcache"] for h in hits} == {"hit"}
    assert all(float(h.headers["x-vetcache-similarity"]) < 1 for h in hits)
    for hit in hits:  # b calls every one of its own hits wrong
        assert feedback(client, "b", hit.headers["x-request-id"], False).status_code == 200

    rate = client.get(f"/admin/fp-rate?namespace={namespace}", headers=ADMIN).json()
    shared = rate["namespaces"][namespace]
    assert (shared["false_positives"], shared["labelled"]) == (0, 0)  # the namespace's rate
    assert rate["overall"]["labelled"] == 0
    assert (rate["tenants"]["b"]["false_positives"], rate["tenants"]["b"]["labelled"]) == (16, 16)
    tune = client.get(f"/admin/tune?namespace={namespace}", headers=ADMIN).json()
    assert tune["labels"] == 0  # neither tuning nor the autopilot reads them
    assert ask(client, "a", namespace, "a's question").headers["x-vetcache"] == "hit"
    # A person confirming one of them makes it the operator's word: it counts for everyone.
    listed = client.get(f"/admin/verdicts?namespace={namespace}", headers=ADMIN).json()["data"]
    review = client.post(
        f"/admin/verdicts/{listed[0]['id']}/review", headers=ADMIN, json={"correct": False}
    )
    assert review.status_code == 200
    rate = client.get(f"/admin/fp-rate?namespace={namespace}", headers=ADMIN).json()
    assert rate["namespaces"][namespace]["false_positives"] == 1


def test_namespace_labels_are_shared_out_per_tenant(
    gateway_client: Callable[..., TestClient],
) -> None:
    client = gateway_client(
        auth={"api_keys": [{"tenant": t, "key_sha256": hash_key(k)} for t, k in KEYS.values()]}
    )
    body = {"model": "fake-gpt", "messages": [{"role": "user", "content": "hi"}]}

    def send(who: str, namespace: str) -> None:
        headers = {"authorization": f"Bearer {KEYS[who][1]}", "x-vetcache-namespace": namespace}
        assert client.post("/v1/chat/completions", headers=headers, json=body).status_code == 200

    for i in range(220):  # more junk namespaces than there are labels (200)
        send("b", f"junk-{i}")
    send("a", "real")
    page = client.get("/metrics").text
    assert 'vetcache_requests_total{model="fake-gpt",namespace="real",outcome="bypass"}' in page
    junk = set(re.findall(r'vetcache_requests_total\{[^}]*namespace="(junk-\d+)"', page))
    assert len(junk) == 100  # b's share: half the labels, with two tenants


def test_reusing_another_tenants_request_id_takes_nothing_from_it(
    tenants: Callable[..., TestClient],
) -> None:
    client = tenants()
    namespace = f"rid-{uuid.uuid4().hex[:8]}"
    shared_id = f"req-{uuid.uuid4().hex}"
    ask(client, "a", namespace, "a's question")
    a_hit = until_hit(client, "a", namespace, "a's question", **{"x-request-id": shared_id})
    ask(client, "b", namespace, "b's question")
    b_hit = until_hit(client, "b", namespace, "b's question", **{"x-request-id": shared_id})
    assert a_hit.headers["x-request-id"] == b_hit.headers["x-request-id"] == shared_id

    assert feedback(client, "a", shared_id, False).status_code == 200  # still a's to label
    assert feedback(client, "b", shared_id, True).status_code == 200  # b labels its own
    other_key = feedback(client, "a2", shared_id, True)  # a's other app: not its request
    assert other_key.status_code == 400
    assert other_key.json()["error"]["code"] == "unknown_request"
    listed = client.get(f"/admin/verdicts?namespace={namespace}", headers=ADMIN).json()["data"]
    labels = {(v["job"]["tenant"], v["job"]["entry_id"], v["verdict"]) for v in listed}
    assert labels == {
        ("a", a_hit.headers["x-vetcache-entry"], "false_positive"),
        ("b", b_hit.headers["x-vetcache-entry"], "correct"),
    }


def test_feedback_answers_only_what_the_caller_sent(tenants: Callable[..., TestClient]) -> None:
    client = tenants(threshold=-1.0)  # anything in the scope hits its nearest entry
    namespace = f"pin-{uuid.uuid4().hex[:8]}"
    ask(client, "a", namespace, "My PIN is 7731. What is my card balance?")
    hit = until_hit(client, "a2", namespace, "What is my card balance?")  # a's entry
    reply = feedback(client, "a2", hit.headers["x-request-id"], False)
    assert reply.status_code == 200
    assert "7731" not in reply.text and "balance" not in reply.text
    assert reply.json() == {
        "object": "feedback",
        "id": reply.json()["id"],
        "source": "feedback",
        "request_id": hit.headers["x-request-id"],
        "correct": False,
        "comment": "checked",
        "created_at": reply.json()["created_at"],
    }
