"""The real default verifier (``cache.verifier.model: default``, built by ``vetcache train
--default`` from the pairs vetcache ships) in front of the fake upstream, on real Redis Stack
with the bundled int8 embedder, at its card's operating point and floor: traps of the kinds it
was trained on are refused (``x-vetcache-refused: verifier``), polite rewordings served when
their score (``x-vetcache-verifier``) reaches the operating point.

Building the default takes minutes on a CPU, so this module skips (saying how to build it)
unless it is built; ``.ci/run`` builds it first."""

from __future__ import annotations

import os
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
from tests.integration.test_verifier import ask

pytestmark = pytest.mark.integration

VERIFIER_DIR = os.environ.get("VETCACHE_VERIFIER_DIR")
"""Where the caller built it (read now: tests run with no ``VETCACHE_*`` variable)."""

CACHED = "How do I cancel my subscription?"
POLITE = [
    "Hi, how do I cancel my subscription?",
    "How do I cancel my subscription? Thanks!",
    "Quick question: how do I cancel my subscription?",
]
"""Politeness: the paraphrase kind it serves most (91% of held-out pairs); the default's
scores here sit just above its operating point, so each is checked against its own score."""
REFUSED = [
    "How do I renew my subscription?",
    "How do I not cancel my subscription?",
    "How do I cancel my friend's subscription?",
]
"""Traps (operation, negation, scope) it scores far under its operating point (~0.15-0.19)."""


@pytest.fixture
def card(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    if VERIFIER_DIR:
        monkeypatch.setenv("VETCACHE_VERIFIER_DIR", VERIFIER_DIR)
    try:
        resolve_folder("default")
    except VerifierError as exc:
        pytest.skip(str(exc))
    return load_scorer("default").card


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
    served = 0
    for text in POLITE:
        reply = ask(client, namespace, text)
        score = float(reply.headers["x-vetcache-verifier"])
        assert (reply.headers["x-vetcache"] == "hit") == (score >= card["threshold"]), text
        served += reply.headers["x-vetcache"] == "hit"
    assert served >= 1
    for text in REFUSED:
        reply = ask(client, namespace, text)
        assert reply.headers["x-vetcache"] == "miss", (text, dict(reply.headers))
        assert reply.headers.get("x-vetcache-refused") == "verifier", dict(reply.headers)
        assert float(reply.headers["x-vetcache-verifier"]) < card["threshold"]
