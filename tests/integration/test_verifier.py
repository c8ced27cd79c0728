"""The learned verifier on the hit path, end to end: a tiny verifier trained in seconds
(``tests.verifier_models``), exported to ONNX by the gateway at start, in front of the fake
upstream, on real Redis Stack with the bundled embedder. A trap in the band is refused
(``x-vetcache-refused: verifier``), a paraphrase served, both with the verifier's score in
``x-vetcache-verifier``; shadow mode changes no answer but counts; a timeout refuses; the
metrics and the audit jobs carry what it said."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from audit import build_queue_and_ledger
from audit.judges.contrast import ContrastJudge
from audit.settings import AuditSettings
from audit.worker import AuditWorker
from cache.embedder import SentenceTransformerEmbedder
from cache.errors import VerifierError
from cache.semantic import SemanticCache
from cache.settings import CacheSettings
from cache.stores.redis import RedisStore
from proxy.app import create_app
from proxy.settings import Settings
from tests.conftest import child_log, vetcache
from tests.integration.test_metrics import scrape, total, value
from tests.verifier_models import tiny_verifier

pytestmark = pytest.mark.integration

CACHED, PARAPHRASE, TRAP = "Cancel my order", "Cancel my order please", "Don't cancel my order"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_verifier(tmp_path_factory.mktemp("verifier") / "tiny")


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


@pytest.fixture
def gateway(
    gateway_client: Callable[..., TestClient],
    embedder: SentenceTransformerEmbedder,
    redis_url: str,
    model: Path,
    onnx_dir: Path,
) -> Callable[..., TestClient]:
    """A gateway on Redis whose cache has a verifier on the tiny model (settings override
    ``cache.verifier``); the floor (threshold) 0.5 puts both test prompts in the band."""

    def build(**verifier: Any) -> TestClient:
        settings = CacheSettings(
            threshold=0.5,
            lookup_budget_ms=5000,
            onnx_dir=str(onnx_dir),
            verifier={"model": str(model), **verifier},
        )
        return gateway_client(
            cache=SemanticCache(settings, RedisStore(redis_url), embedder),
            redis_url=redis_url,
            audit={"sample_rate": 1.0, "burn_in": 10, "near_miss_rate": 0.0},
        )

    return build


def ask(client: TestClient, namespace: str, text: str) -> Any:
    body = {"model": "fake-gpt", "messages": [{"role": "user", "content": text}]}
    reply = client.post(
        "/v1/chat/completions", json=body, headers={"x-vetcache-namespace": namespace}
    )
    assert reply.status_code == 200, reply.text
    return reply


def cached(client: TestClient) -> str:
    """A fresh namespace holding the answer to ``CACHED``."""
    namespace = f"v{uuid.uuid4().hex[:8]}"
    assert ask(client, namespace, CACHED).headers["x-vetcache"] == "miss"
    deadline = time.monotonic() + 15
    while ask(client, namespace, CACHED).headers["x-vetcache"] != "hit":  # an exact repeat
        assert time.monotonic() < deadline, "never admitted"
        time.sleep(0.05)
    return namespace


def test_a_trap_in_the_band_is_refused_and_a_paraphrase_served(
    gateway: Callable[..., TestClient], redis_url: str
) -> None:
    client = gateway()
    namespace = cached(client)
    trap = ask(client, namespace, TRAP)
    assert trap.headers["x-vetcache"] == "miss"
    assert trap.headers["x-vetcache-refused"] == "verifier"
    assert float(trap.headers["x-vetcache-verifier"]) < 0.5
    assert TRAP in trap.json()["choices"][0]["message"]["content"]  # answered fresh
    paraphrase = ask(client, namespace, PARAPHRASE)
    assert paraphrase.headers["x-vetcache"] == "hit"
    assert float(paraphrase.headers["x-vetcache-verifier"]) > 0.5
    assert 0.5 < float(paraphrase.headers["x-vetcache-similarity"]) < 1.0  # in the band
    m = scrape(client.get("/metrics").text)
    assert value(m, "vetcache_verifier_verdicts_total", verdict="refuse", mode="serve") == 1
    assert value(m, "vetcache_verifier_verdicts_total", verdict="agree", mode="serve") == 1
    assert value(m, "vetcache_refused_total", namespace=namespace, reason="verifier") == 1
    assert value(m, "vetcache_verifier_duration_seconds_count") == 2
    assert value(m, "vetcache_verifier_score_count", mode="serve") == 2
    assert "x-vetcache-verifier" not in ask(client, namespace, CACHED).headers  # exact: unverified


async def test_audit_verdicts_carry_the_verifiers_version_and_score(
    gateway: Callable[..., TestClient], redis_url: str
) -> None:
    client = gateway(mode="shadow")
    namespace = cached(client)
    served = ask(client, namespace, PARAPHRASE)
    score = float(served.headers["x-vetcache-verifier"])
    queue, ledger = build_queue_and_ledger(AuditSettings(), redis_url)
    await queue.open()
    store = RedisStore(redis_url)
    worker = AuditWorker("t", queue, ContrastJudge(), ledger, store, AuditSettings())
    try:
        deadline = time.monotonic() + 15
        while len(found := await ledger.query(namespace=namespace)) < 2:
            assert time.monotonic() < deadline, "the hits were never judged"
            await worker.run_once(block_s=0.2)
    finally:
        await queue.close()
        await ledger.close()
        await store.close()
    jobs = {v.job.new_prompt: v.job for v in found if not v.job.exact}
    job = jobs[PARAPHRASE]
    assert job.verifier.startswith("verifier:tiny-test:") and job.verifier.endswith(":onnx-int8")
    assert job.verifier_score == pytest.approx(score, abs=1e-4)
    [exact] = [v.job for v in found if v.job.exact]
    assert (exact.verifier, exact.verifier_score) == ("", None)


def test_shadow_mode_serves_nothing_different_but_counts(
    gateway: Callable[..., TestClient],
) -> None:
    client = gateway(mode="shadow")
    namespace = cached(client)
    trap = ask(client, namespace, TRAP)
    assert trap.headers["x-vetcache"] == "hit"  # what the cache serves without a verifier
    assert "x-vetcache-refused" not in trap.headers
    assert float(trap.headers["x-vetcache-verifier"]) < 0.5  # it would have refused
    m = scrape(client.get("/metrics").text)
    assert value(m, "vetcache_verifier_verdicts_total", verdict="refuse", mode="shadow") == 1
    assert total(m, "vetcache_refused_total", reason="verifier") == 0


def test_a_verifier_over_its_time_refuses(gateway: Callable[..., TestClient]) -> None:
    client = gateway(timeout_ms=0.001)  # no model answers in a microsecond
    namespace = cached(client)
    reply = ask(client, namespace, PARAPHRASE)
    assert reply.headers["x-vetcache"] == "miss"
    assert reply.headers["x-vetcache-refused"] == "verifier"
    assert "x-vetcache-verifier" not in reply.headers  # no score
    m = scrape(client.get("/metrics").text)
    assert value(m, "vetcache_verifier_verdicts_total", verdict="timeout", mode="serve") == 1


def test_a_folder_that_is_not_a_verifier_stops_the_start(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    app = create_app(make_settings(cache={"enabled": True, "verifier": {"model": str(tmp_path)}}))
    with pytest.raises(VerifierError, match=r"vetcache-verifier\.json"), TestClient(app):
        pass


def test_prepare_embedder_exports_the_verifier(model: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        f"cache:\n  onnx_dir: '{tmp_path}'\n  verifier: {{model: '{model}', precision: fp32}}\n"
    )
    process = vetcache("prepare-embedder", "--config", str(config))
    assert process.wait(timeout=240) == 0
    assert any(
        p.name.startswith("verifier-") and p.name.endswith("-fp32") for p in tmp_path.iterdir()
    )
    config.write_text(f"cache:\n  verifier: {{model: '{tmp_path}'}}\n")
    failed = vetcache("prepare-embedder", "--config", str(config))
    assert failed.wait(timeout=240) == 2
    assert "cannot prepare the verifier" in child_log(failed)
