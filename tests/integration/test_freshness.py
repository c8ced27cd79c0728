"""Per-request freshness through the gateway, on a real Redis Stack with the fake upstream
process: ``Cache-Control: max-age``, the admitted TTL (``x-vetcache-ttl``, ``s-maxage``,
bounded by ``cache.max_ttl_s``), and the sliding TTL."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from cache.embedder import HashEmbedder
from cache.semantic import SemanticCache
from cache.settings import CacheSettings
from cache.stores.redis import RedisStore

pytestmark = pytest.mark.integration

QUESTION = "How do I reverse a list in Python?"
Reply = Any


class Asker:
    """Asks one question in a namespace of its own, so tests never share entries."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.namespace = uuid.uuid4().hex[:16]

    def ask(self, **headers: str) -> Reply:
        sent = {"x-vetcache-namespace": self.namespace}
        sent.update({name.replace("_", "-"): value for name, value in headers.items()})
        body = {"model": "fake-gpt", "messages": [{"role": "user", "content": QUESTION}]}
        reply = self.client.post("/v1/chat/completions", headers=sent, json=body)
        assert reply.status_code == 200, reply.text
        return reply

    def admitted(self) -> str:
        """Wait for the background admission of a miss; the entry's id."""
        for _ in range(100):
            probe = self.ask(cache_control="no-store")
            if probe.headers["x-vetcache"] == "hit":
                return str(probe.headers["x-vetcache-entry"])
            time.sleep(0.05)
        raise AssertionError("the answer was never admitted")


@pytest.fixture
def open_gateway(gateway_client: Callable[..., TestClient], redis_url: str) -> Callable[..., Asker]:
    def build(**cache: Any) -> Asker:
        settings = CacheSettings(**{"threshold": 0.99, "lookup_budget_ms": 2000, **cache})
        store = RedisStore(redis_url)
        return Asker(gateway_client(cache=SemanticCache(settings, store, HashEmbedder())))

    return build


def entry_ttl(redis_url: str, entry_id: str) -> float:
    """Seconds the entry's hash has left in Redis."""
    client = redis.Redis.from_url(redis_url)
    try:
        (key,) = list(client.scan_iter(match=f"vc:e:*:{entry_id}", count=10_000))
        return float(client.pttl(key)) / 1000
    finally:
        client.close()


def test_max_age_serves_only_younger_entries(open_gateway: Callable[..., Asker]) -> None:
    asker = open_gateway()
    assert asker.ask().headers["x-vetcache"] == "miss"
    entry = asker.admitted()
    young = asker.ask(cache_control="max-age=3600")
    assert young.headers["x-vetcache"] == "hit" and young.headers["x-vetcache-entry"] == entry
    stale = asker.ask(cache_control="max-age=0")  # any entry is older than 0 s
    assert stale.headers["x-vetcache"] == "miss"
    assert stale.headers["x-vetcache-refused"] == "stale"
    # max-stale is ignored: it does not loosen max-age, nor does it fail the request.
    ignored = asker.ask(cache_control="max-age=0, max-stale=3600")
    assert ignored.headers["x-vetcache-refused"] == "stale"


def test_the_ttl_header_and_s_maxage_set_the_entrys_life_within_the_bound(
    open_gateway: Callable[..., Asker], redis_url: str
) -> None:
    asker = open_gateway(ttl_s=600, max_ttl_s=1200)
    asker.ask(x_vetcache_ttl="60")
    assert 50 < entry_ttl(redis_url, asker.admitted()) <= 60
    longer = open_gateway(ttl_s=600, max_ttl_s=1200)
    longer.ask(cache_control="s-maxage=99999999")  # cut to max_ttl_s
    assert 1100 < entry_ttl(redis_url, longer.admitted()) <= 1200
    default = open_gateway(ttl_s=600, max_ttl_s=1200)
    default.ask()
    assert 500 < entry_ttl(redis_url, default.admitted()) <= 600


def test_a_short_ttl_expires_and_a_zero_ttl_stores_nothing(
    open_gateway: Callable[..., Asker],
) -> None:
    asker = open_gateway()
    asker.ask(x_vetcache_ttl="0")
    time.sleep(0.3)  # give a (wrong) background admission time to land
    assert asker.ask(cache_control="no-store").headers["x-vetcache"] == "miss"
    asker.ask(x_vetcache_ttl="1")
    asker.admitted()
    time.sleep(1.5)  # bounded wait past the TTL; asserts expiry, not timing
    assert asker.ask(cache_control="no-store").headers["x-vetcache"] == "miss"


@pytest.mark.parametrize("value", ["soon", "-1", "1.5"])
def test_bad_freshness_values_are_a_400_naming_the_header(
    open_gateway: Callable[..., Asker], value: str
) -> None:
    asker = open_gateway()
    for header, sent in (("cache-control", f"max-age={value}"), ("x-vetcache-ttl", value)):
        reply = asker.client.post(
            "/v1/chat/completions",
            headers={header: sent},
            json={"model": "fake-gpt", "messages": [{"role": "user", "content": QUESTION}]},
        )
        assert reply.status_code == 400, reply.text
        assert reply.json()["error"]["param"] == header


@pytest.mark.parametrize("sliding", [True, False])
def test_a_hit_gives_the_entry_its_ttl_again_under_sliding_ttl(
    open_gateway: Callable[..., Asker], redis_url: str, sliding: bool
) -> None:
    # Margins of 0.5 s and more each way: a slow machine only makes the first life's end
    # surer, and leaves 1.5 s of the second.
    asker = open_gateway(ttl_s=4, sliding_ttl=sliding)
    asker.ask()
    entry = asker.admitted()
    time.sleep(2.0)
    assert asker.ask().headers["x-vetcache"] == "hit"
    time.sleep(0.2)  # the hit's after-work slides the entry once the answer is sent
    left = entry_ttl(redis_url, entry) if sliding else None
    time.sleep(2.3)  # past the first 4 s, within 4 s of the hit
    again = asker.ask(cache_control="no-store")
    assert again.headers["x-vetcache"] == ("hit" if sliding else "miss")
    if left is not None:
        assert left > 3.0  # 4 s from the hit, not the 2 s left of the first 4 s
