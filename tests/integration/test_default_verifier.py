"""The real default verifier (``cache.verifier.model: default``, built by ``vetcache train
--default`` from the pairs vetcache ships) in front of the fake upstream, on real Redis Stack
with the bundled int8 embedder, at its card's operating point and floor: obvious traps of the
kinds it was trained on are refused (``x-vetcache-refused: verifier``), near repeats served,
each with its score in ``x-vetcache-verifier``.

Building the default takes minutes on a CPU, so this module skips (saying how to build it)
unless it is built; ``.ci/run`` builds it first."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cache.embedder import BUNDLED_MODEL
from cache.errors import VerifierError
from cache.onnx_embedder import OnnxEmbedder
from cache.semantic import SemanticCache
from cache.settings import CacheSettings
from cache.stores.redis import RedisStore
from cache.verifier_model import load_scorer, resolve_folder

pytestmark = pytest.mark.integration

CACHED = "How do I cancel my subscription?"
SERVED = ["How do I cancel my subscription ?", "how do i cancel my subscripton?"]
REFUSED = ["How do I renew my subscription?", "How do I not cancel my subscription?"]


@pytest.fixture(scope="module")
def card() -> dict[str, Any]:
    try:
        resolve_folder("default")
    except VerifierError as exc:
        pytest.skip(str(exc))
    return load_scorer("default").card


def ask(client: TestClient, namespace: str, text: str) -> Any:
    body = {"model": "fake-gpt", "messages": [{"role": "user", "content": text}]}
    reply = client.post(
        "/v1/chat/completions", json=body, headers={"x-vetcache-namespace": namespace}
    )
    assert reply.status_code == 200, reply.text
    return reply


def test_the_default_refuses_traps_and_serves_repeats_at_its_operating_point(
    card: dict[str, Any], gateway_client: Callable[..., TestClient], redis_url: str
) -> None:
    floor = float(card["floor"])
    settings = CacheSettings(threshold=floor, lookup_budget_ms=5000, verifier={"model": "default"})
    embedder = OnnxEmbedder(BUNDLED_MODEL, precision="int8")
    client = gateway_client(
        cache=SemanticCache(settings, RedisStore(redis_url), embedder), redis_url=redis_url
    )
    namespace = f"d{uuid.uuid4().hex[:8]}"
    assert ask(client, namespace, CACHED).headers["x-vetcache"] == "miss"
    deadline = time.monotonic() + 15
    while ask(client, namespace, CACHED).headers["x-vetcache"] != "hit":  # admitted
        assert time.monotonic() < deadline, "never admitted"
        time.sleep(0.05)
    for text in SERVED:
        reply = ask(client, namespace, text)
        assert reply.headers["x-vetcache"] == "hit", (text, dict(reply.headers))
        assert float(reply.headers["x-vetcache-verifier"]) >= card["threshold"]
    for text in REFUSED:
        reply = ask(client, namespace, text)
        assert reply.headers["x-vetcache"] == "miss", (text, dict(reply.headers))
        assert reply.headers.get("x-vetcache-refused") == "verifier", dict(reply.headers)
        assert float(reply.headers["x-vetcache-verifier"]) < card["threshold"]
