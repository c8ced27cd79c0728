"""Invalidation through the admin routes of a gateway on a real Redis Stack (hashed vectors,
the fake upstream process): a deleted entry is not served again, a filter deletes what all
its conditions name and nothing else, and ``vetcache invalidate`` does the same from the
command line. Two replicas at once: ``tests/integration/test_scale_out.py``."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from cache.embedder import HashEmbedder
from cache.semantic import SemanticCache
from cache.settings import CacheSettings
from cache.stores.redis import RedisStore
from proxy.auth import hash_key
from tests.conftest import ROOT, route

pytestmark = pytest.mark.integration

KEYS = {"a": "sk-inval-a", "b": "sk-inval-b"}
ADMIN = {"authorization": "Bearer sk-inval-admin"}


@pytest.fixture
def gateway(
    gateway_client: Callable[..., TestClient], redis_url: str, fake_upstream: str
) -> TestClient:
    settings = CacheSettings(threshold=0.95, lookup_budget_ms=2000)
    return gateway_client(
        cache=SemanticCache(settings, RedisStore(redis_url), HashEmbedder()),
        auth={"api_keys": [{"tenant": t, "key_sha256": hash_key(k)} for t, k in KEYS.items()]},
        admin_key_sha256=hash_key("sk-inval-admin"),
        model_list=[
            route("fake-gpt", "fake-gpt", fake_upstream),
            route("other-gpt", "fake-gpt", fake_upstream),
        ],
    )


def ask(
    client: TestClient, namespace: str, tenant: str = "a", model: str = "fake-gpt", text: str = "q"
) -> Any:
    response = client.post(
        "/v1/chat/completions",
        headers={"authorization": f"Bearer {KEYS[tenant]}", "x-vetcache-namespace": namespace},
        json={"model": model, "messages": [{"role": "user", "content": f"{text} {namespace}"}]},
    )
    assert response.status_code == 200, response.text
    return response


def admitted(client: TestClient, namespace: str, **request: str) -> str:
    """Ask until the answer is served from the cache (it is admitted after the answer);
    the entry's id."""
    assert ask(client, namespace, **request).headers["x-vetcache"] == "miss"
    deadline = time.monotonic() + 10
    while (hit := ask(client, namespace, **request)).headers["x-vetcache"] != "hit":
        assert time.monotonic() < deadline, "the answer was never admitted"
        time.sleep(0.05)
    return str(hit.headers["x-vetcache-entry"])


def test_an_entry_deleted_by_the_id_its_hit_named_is_not_served_again(gateway: TestClient) -> None:
    namespace = f"inv-{uuid.uuid4().hex[:8]}"
    entry = admitted(gateway, namespace)
    deleted = gateway.delete(f"/admin/entries/{entry}", headers=ADMIN)
    assert deleted.status_code == 200 and deleted.json() == {"deleted": 1, "entry": entry}
    assert ask(gateway, namespace).headers["x-vetcache"] == "miss"  # at once, not eventually
    again = gateway.delete(f"/admin/entries/{entry}", headers=ADMIN)
    assert again.status_code == 404 and again.json()["error"]["code"] == "entry_not_found"
    assert gateway.delete(f"/admin/entries/{entry}").status_code == 401  # the admin key only
    bad = gateway.delete("/admin/entries/not%20an%20id", headers=ADMIN)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "entry_id"


def test_a_filter_deletes_what_all_its_conditions_name(gateway: TestClient) -> None:
    ns, other = f"inv-{uuid.uuid4().hex[:8]}", f"inv-{uuid.uuid4().hex[:8]}"
    for namespace, tenant, model in [
        (ns, "a", "fake-gpt"), (ns, "b", "fake-gpt"), (ns, "a", "other-gpt"),
        (other, "a", "fake-gpt"),
    ]:  # fmt: skip
        admitted(gateway, namespace, tenant=tenant, model=model)

    def invalidate(**conditions: Any) -> int:
        response = gateway.post("/admin/invalidate", headers=ADMIN, json=conditions)
        assert response.status_code == 200, response.text
        return int(response.json()["deleted"])

    assert invalidate(namespace=ns, tenant="a", model="fake-gpt") == 1
    assert ask(gateway, ns, "a").headers["x-vetcache"] == "miss"
    assert ask(gateway, ns, "b").headers["x-vetcache"] == "hit"
    assert ask(gateway, ns, "a", "other-gpt").headers["x-vetcache"] == "hit"
    assert invalidate(namespace=ns, model="other-gpt") == 1
    assert ask(gateway, ns, "a", "other-gpt").headers["x-vetcache"] == "miss"
    now = datetime.now(UTC).isoformat()
    assert invalidate(namespace=other, created_before="2000-01-01T00:00:00Z") == 0
    assert invalidate(namespace=other, created_before=now) == 1
    assert ask(gateway, other, "a").headers["x-vetcache"] == "miss"
    assert ask(gateway, ns, "b").headers["x-vetcache"] == "hit"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, None),
        ({"namespace": "x", "tenat": "a"}, "tenat"),  # a typo must not widen the deletion
        ({"all": True, "namespace": "x"}, None),
        ({"created_before": "2026-01-01T00:00:00"}, "created_before"),  # no zone: ambiguous
        ({"namespace": "bad ns"}, "namespace"),
        ({"all": "yes"}, "all"),
    ],
)
def test_a_filter_that_names_nothing_clearly_deletes_nothing(
    gateway: TestClient, body: dict[str, Any], param: str | None
) -> None:
    namespace = f"inv-{uuid.uuid4().hex[:8]}"
    admitted(gateway, namespace)
    refused = gateway.post("/admin/invalidate", headers=ADMIN, json=body)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["param"] == param
    assert ask(gateway, namespace).headers["x-vetcache"] == "hit"


def test_the_cli_deletes_from_the_store_every_replica_reads(
    gateway: TestClient, redis_url: str, fake_upstream: str, tmp_path: Path
) -> None:
    namespace = f"inv-{uuid.uuid4().hex[:8]}"
    entry = admitted(gateway, namespace)
    admitted(gateway, namespace, tenant="b")
    config = tmp_path / "vetcache.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "redis_url": redis_url,
                "auth": {"enabled": False},
                "model_list": [route("fake-gpt", "fake-gpt", fake_upstream)],
            }
        )
    )

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "proxy.cli", "invalidate", "--config", str(config)]
        return subprocess.run(
            [*command, *args], cwd=ROOT, capture_output=True, text=True, timeout=120
        )

    done = cli("--entry", entry)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1 entries deleted"
    assert "invalidated 1 entries by cli:" in done.stderr  # the audit line, who ran it
    assert ask(gateway, namespace).headers["x-vetcache"] == "miss"
    assert cli("--entry", entry).returncode == 1  # no such entry (any more)
    empty = cli()
    assert empty.returncode == 2 and "empty filter" in empty.stderr
    done = cli("--namespace", namespace, "--tenant", "b")
    assert done.returncode == 0 and done.stdout.strip() == "1 entries deleted"
    assert ask(gateway, namespace, "b").headers["x-vetcache"] == "miss"
