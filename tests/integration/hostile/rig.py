"""What the hostile-input tests share: the keys, a request that must be served, the
in-process cache, and the checks that a refusal is OpenAI's error and the gateway still
serves."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from cache.embedder import HashEmbedder
from cache.semantic import SemanticCache
from cache.settings import CacheSettings
from cache.stores.memory import MemoryStore

CLIENT_KEY = "sk-hostile-tenant"
ADMIN_KEY = "sk-hostile-admin"
CLIENT = {"authorization": f"Bearer {CLIENT_KEY}"}
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
JSON = {"content-type": "application/json", **CLIENT}
GOOD = {"model": "fake-gpt", "messages": [{"role": "user", "content": "hello"}]}
LIMIT = 1 << 20
"""max_body_bytes of the hand-made cases' gateway: room for 100k levels of nesting."""


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


def assert_anthropic_error(response: Any) -> dict[str, Any]:
    """``response`` is a 4xx with an Anthropic error body (``/v1/messages``); its error."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    body = response.json()
    assert set(body) == {"type", "error"} and body["type"] == "error", body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"type", "message"}, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    return error


def assert_still_serving(client: TestClient) -> None:
    response = client.post("/v1/chat/completions", headers=JSON, json=GOOD)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"].startswith("[fake-gpt] reply")
