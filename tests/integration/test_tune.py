"""``vetcache tune`` on a real Redis: seeded verdicts give the threshold the math says, and
``--apply`` changes what a running gateway process serves within 5 seconds."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient

from audit.ledgers.base import similarity_bin
from audit.ledgers.redis import RedisLedger
from audit.stats import Z95
from cache.embedder import HashEmbedder
from cache.semantic import SemanticCache
from cache.settings import CacheSettings
from cache.stores.memory import MemoryStore
from proxy.auth import hash_key
from tests.conftest import free_port, record_verdicts, route, stop, vetcache, wait_http

pytestmark = pytest.mark.integration

CACHED = "How do I reset my password?"
ASKED = "I forgot my password, how do I change it?"  # cosine 0.898 to CACHED (bundled model)


def tune(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxy.cli", "tune", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def seed(redis_url: str, namespace: str) -> None:
    """20 false hits at 0.853 and 200 correct ones at 0.921, and 1000 lookups."""
    ledger = RedisLedger(redis_url)
    try:
        await record_verdicts(ledger, namespace, 0.853, "false_positive", 20)
        await record_verdicts(ledger, namespace, 0.921, "correct", 200)
        for similarity, count in ((0.5, 500), (0.853, 300), (0.921, 200)):
            for _ in range(count):
                await ledger.count_lookup(namespace, similarity_bin(similarity))
    finally:
        await ledger.close()


def write_config(tmp_path: Path, port: int, redis_url: str, fake_upstream: str) -> Path:
    """A gateway's config on Redis with threshold 0.95; its path."""
    config = tmp_path / "vetcache.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "port": port,
                "redis_url": redis_url,
                "auth": {"enabled": False},
                "cache": {"threshold": 0.95, "lookup_budget_ms": 5000},
                # Every hit is sampled, so each seeded verdict weighs 1 in the estimate.
                "audit": {"sample_rate": 1.0},
                "model_list": [route("fake-gpt", "fake-gpt", fake_upstream)],
            }
        )
    )
    return config


async def ask(http: httpx.AsyncClient, namespace: str, text: str) -> Any:
    """Ask without storing the answer (``no-store``): only ``CACHED`` is ever admitted."""
    body = {"model": "fake-gpt", "messages": [{"role": "user", "content": text}]}
    headers = {"x-vetcache-namespace": namespace, "cache-control": "no-store"}
    return await http.post("/v1/chat/completions", json=body, headers=headers)


async def admit_cached(http: httpx.AsyncClient, namespace: str) -> None:
    """Ask ``CACHED`` once, storing its answer, and wait until it is served."""
    body = {"model": "fake-gpt", "messages": [{"role": "user", "content": CACHED}]}
    await http.post("/v1/chat/completions", json=body, headers={"x-vetcache-namespace": namespace})
    deadline = time.monotonic() + 10
    while (await ask(http, namespace, CACHED)).headers["x-vetcache"] != "hit":
        assert time.monotonic() < deadline, "the cached answer was never admitted"


def assert_recommends_the_math(
    done: subprocess.CompletedProcess[str], namespace: str, plot: Path
) -> None:
    """The report of ``tune --apply --format json --plot``: the Wilson bound's threshold."""
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    rows = {r["threshold"]: r for r in report["rows"]}
    assert rows[0.85]["false_positives"] == 20 and rows[0.85]["fp_upper"] > 0.05
    assert rows[0.86]["fp_upper"] == pytest.approx(Z95**2 / (200 + Z95**2))
    assert report["recommended"] == 0.86 and report["current_threshold"] == 0.95
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert f"applied: namespace {namespace} threshold 0.86" in done.stderr


def assert_pairs_join_the_verdicts(config: Path, namespace: str, tmp_path: Path) -> None:
    """Labelled pairs from a file join the verdicts (scored by the bundled model); a bad
    label is reported with its file and line."""
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(
        "text_a\ttext_b\tlabel\tcategory\n"
        f"{CACHED}\t{ASKED}\t1\tparaphrase\n"
        "Cancel my order\tDon't cancel my order\t0\tnegation\n"
    )
    with_pairs = tune(
        "--config", str(config), "--namespace", namespace, "--target-fp", "0.05",
        "--pairs", str(pairs), "--format", "json",
    )  # fmt: skip
    assert with_pairs.returncode == 0, with_pairs.stderr
    assert json.loads(with_pairs.stdout)["labels"] == 222
    pairs.write_text("text_a\ttext_b\tlabel\nA\tB\t7\n")
    broken = tune(
        "--config", str(config), "--namespace", namespace, "--target-fp", "0.05",
        "--pairs", str(pairs),
    )  # fmt: skip
    assert broken.returncode == 2 and f"{pairs}:2:" in broken.stderr


async def test_tune_recommends_the_math_and_apply_reaches_a_running_gateway(
    redis_url: str, fake_upstream: str, tmp_path: Path
) -> None:
    namespace = f"tune-{uuid.uuid4().hex[:8]}"
    port = free_port()
    config = write_config(tmp_path, port, redis_url, fake_upstream)
    await seed(redis_url, namespace)
    gateway = vetcache("serve", "--config", str(config))
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", gateway, timeout=120)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            await admit_cached(http, namespace)
            before = await ask(http, namespace, ASKED)
            assert before.headers["x-vetcache"] == "miss"  # 0.898 < 0.95
            assert float(before.headers["x-vetcache-similarity"]) == pytest.approx(0.898, abs=0.01)

            plot = tmp_path / "tune.png"
            done = tune(
                "--config", str(config), "--namespace", namespace, "--target-fp", "0.05",
                "--apply", "--format", "json", "--plot", str(plot),
            )  # fmt: skip
            applied_at = time.monotonic()
            assert_recommends_the_math(done, namespace, plot)
            while (after := await ask(http, namespace, ASKED)).headers["x-vetcache"] != "hit":
                assert time.monotonic() - applied_at < 5, "the gateway never followed"
                await asyncio.sleep(0.1)
            assert after.headers["x-vetcache-threshold"] == "0.8600"

            assert_pairs_join_the_verdicts(config, namespace, tmp_path)
    finally:
        stop(gateway)


def test_tune_explains_bad_input(tmp_path: Path) -> None:
    embedded = tmp_path / "embedded.yaml"
    embedded.write_text("auth: {enabled: false}\n")
    done = tune("--config", str(embedded), "--target-fp", "0.05")
    assert done.returncode == 2 and "needs redis_url" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    done = tune("--config", str(embedded), "--target-fp", "1.5")
    assert done.returncode == 2 and "--target-fp must be between 0 and 1" in done.stderr


def test_admin_tune_returns_the_same_report(
    gateway_client: Callable[..., TestClient], fake_upstream: str
) -> None:
    client = gateway_client(
        cache=SemanticCache(CacheSettings(threshold=0.95), MemoryStore(), HashEmbedder()),
        audit={"sample_rate": 1.0},
        admin_key_sha256=hash_key("sk-admin"),
    )
    ledger = client.app.state.auditor.ledger  # type: ignore[attr-defined]
    asyncio.run(record_verdicts(ledger, "shop", 0.853, "false_positive", 20))
    asyncio.run(record_verdicts(ledger, "shop", 0.921, "correct", 200))
    admin = {"authorization": "Bearer sk-admin"}
    report = client.get("/admin/tune?namespace=shop&target_fp=0.05", headers=admin).json()
    assert report["recommended"] == 0.86 and report["current_threshold"] == 0.95
    assert report["labels"] == 220 and report["labels_in_band"] == 200
    # Issue 18: clean labels only at 0.97 recommend staying at 0.95, not the sweep's 0.70.
    asyncio.run(record_verdicts(ledger, "clean", 0.97, "correct", 100))
    clean = client.get("/admin/tune?namespace=clean&target_fp=0.05", headers=admin).json()
    assert clean["recommended"] == 0.95 and clean["labels_in_band"] == 0
    strict = "/admin/tune?namespace=shop&target_fp=0.05&min_band_labels=201"
    short = client.get(strict, headers=admin).json()  # no labels at or above 0.95 either
    assert short["recommended"] is None and "lack labels in the band" in short["reason"]
    assert client.get("/admin/tune?namespace=shop").status_code == 401
    bad = client.get("/admin/tune?namespace=shop&target_fp=2", headers=admin)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "target_fp"


def test_the_gateway_runs_the_autopilot_for_opted_in_namespaces(
    gateway_client: Callable[..., TestClient],
) -> None:
    client = gateway_client(
        cache=SemanticCache(CacheSettings(threshold=0.9), MemoryStore(), HashEmbedder()),
        audit={
            "sample_rate": 1.0,
            "autopilot": {
                "namespaces": ["shop"],
                "interval_s": 0.1,
                "min_new_verdicts": 10,
                "min_threshold": 0.85,
                "max_threshold": 0.95,
            },
        },
        admin_key_sha256=hash_key("sk-admin"),
    )
    ledger = client.app.state.auditor.ledger  # type: ignore[attr-defined]
    asyncio.run(record_verdicts(ledger, "shop", 0.93, "false_positive", 10))
    admin = {"authorization": "Bearer sk-admin"}
    deadline = time.monotonic() + 10
    while client.get("/admin/thresholds", headers=admin).json()["namespaces"].get("shop") != 0.92:
        assert time.monotonic() < deadline, "the autopilot never moved the threshold"
        time.sleep(0.1)
    metrics = client.get("/metrics").text
    assert 'vetcache_autopilot_moves_total{direction="up",namespace="shop"} 1.0' in metrics
