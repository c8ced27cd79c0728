"""``cache.embedder_languages``: no semantic hit in a language the embedder does not read,
said in ``x-vetcache-refused`` and counted; exact repeats still served."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cache.embedder import HashEmbedder
from cache.semantic import SemanticCache
from cache.settings import CacheSettings
from cache.stores.memory import MemoryStore
from tests.integration.test_contrast_guard import refusals

pytestmark = pytest.mark.integration

ENGLISH = "How do I cancel my subscription?"
FRENCH = "Comment annuler mon abonnement ?"  # a paraphrase: the bundled model scores ~0.36
FRENCH_TRAP = "Comment renouveler mon abonnement ?"  # renew, not cancel


def gateway(gateway_client: Callable[..., TestClient], **settings: Any) -> TestClient:
    # Threshold -1 with a meaningless embedder: every entry of the scope is a semantic
    # candidate over the threshold, so only the policy can refuse one.
    cache_settings = CacheSettings(threshold=-1.0, lookup_budget_ms=2000, **settings)
    return gateway_client(cache=SemanticCache(cache_settings, MemoryStore(), HashEmbedder()))


def ask(client: TestClient, text: str) -> Any:
    body = {"model": "fake-gpt", "messages": [{"role": "user", "content": text}]}
    return client.post("/v1/chat/completions", json=body)


def admitted(client: TestClient, text: str) -> None:
    """Wait until an exact repeat of ``text`` is a hit (its answer was admitted)."""
    deadline = time.monotonic() + 5
    while ask(client, text).headers["x-vetcache"] != "hit":
        assert time.monotonic() < deadline, f"{text!r} was never admitted"
        time.sleep(0.05)


def test_a_french_paraphrase_of_an_english_prompt_is_answered_fresh_and_repeats_exactly(
    gateway_client: Callable[..., TestClient],
) -> None:
    client = gateway(gateway_client)
    assert ask(client, ENGLISH).headers["x-vetcache"] == "miss"
    admitted(client, ENGLISH)
    english = ask(client, "How can I cancel my subscription?")
    assert english.headers["x-vetcache"] == "hit"  # English still hits semantically
    french = ask(client, FRENCH)
    assert (french.headers["x-vetcache"], french.headers["x-vetcache-refused"]) == (
        "miss",
        "language",
    )
    assert FRENCH in french.json()["choices"][0]["message"]["content"]  # the upstream's answer
    admitted(client, FRENCH)  # the French answer is its own entry, served to exact repeats
    exact = ask(client, FRENCH)
    assert exact.headers["x-vetcache"] == "hit" and "x-vetcache-refused" not in exact.headers
    trap = ask(client, FRENCH_TRAP)  # French to French: the similarity means nothing either
    assert trap.headers["x-vetcache-refused"] == "language"
    assert refusals(client) == {"language": 2.0}


def test_an_embedder_named_for_french_serves_french_semantically(
    gateway_client: Callable[..., TestClient],
) -> None:
    client = gateway(gateway_client, embedder_languages=["en", "fr"])
    ask(client, ENGLISH)
    admitted(client, ENGLISH)
    french = ask(client, FRENCH)
    assert french.headers["x-vetcache"] == "hit" and "x-vetcache-refused" not in french.headers
    assert refusals(client) == {}
