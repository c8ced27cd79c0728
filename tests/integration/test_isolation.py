"""Who may do what: every admin route needs the admin key, whatever the method or path;
a client key cannot loosen a threshold. (No hit crosses a scope: the hypothesis property in
tests/unit/test_semantic_cache.py and the tenant test in test_admission.py; feedback only on
one's own requests: tests/integration/test_audit_redis.py.)"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from proxy.auth import hash_key

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
