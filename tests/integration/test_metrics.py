"""``/metrics`` after a scripted mix of hits, misses, bypasses, errors and audits, on the
bundled embedder and the in-process audit path; and with ``serve --workers 2``."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from audit.stats import wilson
from cache.embedder import HashEmbedder, SentenceTransformerEmbedder
from cache.language import LABELS
from cache.semantic import SemanticCache
from cache.settings import CacheSettings
from cache.stores.memory import MemoryStore
from proxy.auth import hash_key
from proxy.summary import quantile
from tests.conftest import child_log, free_port, route, stop, vetcache, wait_http

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(text: str) -> Samples:
    """Every sample of a ``/metrics`` page, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when absent (a counter never incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum over every sample of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, lbls), v in samples.items() if n == name and want <= lbls)


@pytest.fixture(scope="module")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


# TestClient answers with its own HTTP library's Response type (httpx or its successor).
Reply = Any
ADMIN = {"authorization": "Bearer sk-admin"}


def wait(check: Callable[[], bool], what: str) -> None:
    """Until ``check()`` holds, for at most 15 s."""
    deadline = time.monotonic() + 15
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def scripted_gateway(
    gateway_client: Callable[..., TestClient],
    embedder: SentenceTransformerEmbedder,
    fake_upstream: str,
    store: MemoryStore,
) -> TestClient:
    """Threshold 0.5 (a negation hits), every hit audited in-process, gauges refreshed every
    0.1 s, and a ``broken`` model whose upstream answers 500."""
    return gateway_client(
        cache=SemanticCache(CacheSettings(threshold=0.5, lookup_budget_ms=5000), store, embedder),
        audit={"burn_in": 10, "sample_rate": 1.0, "near_miss_rate": 0.0},
        metrics={"refresh_s": 0.1},
        admin_key_sha256=hash_key("sk-admin"),
        model_list=[
            route("fake-gpt", "fake-gpt", fake_upstream),
            route("broken", "error-500", fake_upstream),
        ],
    )


def play_the_mix(client: TestClient, store: MemoryStore, ns: str) -> Reply:
    """2 misses (both admitted), 2 hits, 1 bypass and 1 upstream error in ``ns``; the first
    miss."""

    def ask(text: str, model: str = "fake-gpt", **headers: str) -> Reply:
        body = {"model": model, "messages": [{"role": "user", "content": text}]}
        return client.post(
            "/v1/chat/completions", json=body, headers={"x-vetcache-namespace": ns, **headers}
        )

    first = ask("Cancel my subscription")
    assert first.headers["x-vetcache"] == "miss"
    wait(lambda: asyncio.run(store.count(ns)) == 1, "the first answer was never admitted")
    assert ask("Cancel my subscription, please").headers["x-vetcache"] == "hit"
    assert ask("Don't cancel my subscription").headers["x-vetcache"] == "hit"
    far = ask("What is the tallest mountain in Africa?")
    assert far.headers["x-vetcache"] == "miss" and "x-vetcache-similarity" in far.headers
    assert (
        ask("Skip the cache", **{"cache-control": "no-cache, no-store"}).headers["x-vetcache"]
        == "bypass"
    )
    assert ask("This one fails", model="broken").status_code == 500
    wait(lambda: asyncio.run(store.count(ns)) == 2, "the second miss was never admitted")
    return first


def verdicts(client: TestClient, ns: str) -> list[dict[str, Any]]:
    return list(client.get(f"/admin/verdicts?namespace={ns}", headers=ADMIN).json()["data"])


def fp_gauge_is(
    client: TestClient, ns: str, expected: float, entries: float = 2
) -> Callable[[], bool]:
    # Both gauges from one refresh that ran after everything above had landed.
    def check() -> bool:
        samples = scrape(client.get("/metrics").text)
        found = samples.get(("vetcache_false_positive_rate", frozenset({("namespace", ns)})))
        stored = samples.get(("vetcache_cache_entries", frozenset({("namespace", ns)})))
        return found == pytest.approx(expected) and stored == entries

    return check


def assert_requests_counted(m: Samples, ns: str) -> None:
    """Each request by outcome, its duration, and the similarity of its best candidate."""
    assert value(m, "vetcache_requests_total", namespace=ns, model="fake-gpt", outcome="hit") == 2
    assert value(m, "vetcache_requests_total", namespace=ns, model="fake-gpt", outcome="miss") == 2
    assert (
        value(m, "vetcache_requests_total", namespace=ns, model="fake-gpt", outcome="bypass") == 1
    )
    assert value(m, "vetcache_requests_total", namespace=ns, model="broken", outcome="error") == 1
    assert value(m, "vetcache_request_duration_seconds_count", outcome="hit") == 2
    assert value(m, "vetcache_request_duration_seconds_count", outcome="error") == 1
    # Similarity of the best candidate: both hits, and the one miss that had a candidate.
    assert value(m, "vetcache_similarity_count", outcome="hit") == 2
    assert value(m, "vetcache_similarity_count", outcome="miss") == 1
    assert value(m, "vetcache_similarity_bucket", outcome="hit", le="0.5") == 0


def assert_stages_counted(m: Samples) -> None:
    # Stages: every lookup embedded once (5 lookups: the failed request looked up too; the
    # bypass did not); the upstream was called for 2 misses, the bypass and the failure.
    assert value(m, "vetcache_stage_duration_seconds_count", stage="embed") == 5
    assert value(m, "vetcache_stage_duration_seconds_count", stage="vector_search") == 5
    assert value(m, "vetcache_stage_duration_seconds_count", stage="upstream") == 4
    assert value(m, "vetcache_stage_duration_seconds_count", stage="admit") == 2
    assert value(m, "vetcache_stage_duration_seconds_count", stage="judge") == 2


def assert_audits_counted(m: Samples, ns: str) -> None:
    """Jobs and verdicts, the FP rate's interval, and the gauges beside it."""
    assert value(m, "vetcache_audit_jobs_total", namespace=ns, kind="hit") == 2
    judge = {"namespace": ns, "judge": "contrast/2", "kind": "hit"}
    assert value(m, "vetcache_audit_verdicts_total", verdict="false_positive", **judge) == 1
    assert value(m, "vetcache_audit_verdicts_total", verdict="correct", **judge) == 1
    assert value(m, "vetcache_audit_lag_seconds_count") == 2
    lower, upper = wilson(1, 2)
    assert value(m, "vetcache_false_positive_rate_lower", namespace=ns) == pytest.approx(lower)
    assert value(m, "vetcache_false_positive_rate_upper", namespace=ns) == pytest.approx(upper)
    assert value(m, "vetcache_false_positive_labelled", namespace=ns) == 2
    assert value(m, "vetcache_threshold", namespace="_default") == 0.5
    assert value(m, "vetcache_cache_entries", namespace=ns) == 2
    assert value(m, "vetcache_audit_queue_depth") == 0


def assert_the_views_are_ready(m: Samples, ns: str) -> None:
    """The mission's numbers without PromQL: the hit ratio (2 hits of 4 lookups; the bypass
    and the error did not look up) and the p99 of hits and of misses over the view window,
    the same numbers the counters on this page give."""
    assert value(m, "vetcache_hit_ratio", namespace=ns) == 0.5
    for outcome in ("hit", "miss"):
        buckets = [
            (float(dict(labels)["le"]), v)
            for (name, labels), v in m.items()
            if name == "vetcache_request_duration_seconds_bucket"
            and dict(labels)["outcome"] == outcome
        ]
        p99 = value(m, "vetcache_request_duration_p99_seconds", outcome=outcome)
        assert p99 > 0 and p99 == pytest.approx(quantile(0.99, buckets))


def assert_a_review_is_counted(client: TestClient, ns: str) -> None:
    """A person overturns the false positive: counted as a review, and the gauge follows."""
    [bad] = [v for v in verdicts(client, ns) if v["verdict"] == "false_positive"]
    review = client.post(
        f"/admin/verdicts/{bad['id']}/review", headers=ADMIN, json={"correct": True}
    )
    assert review.status_code == 200
    wait(fp_gauge_is(client, ns, 0.0), "the FP-rate gauge never followed the review")
    m = scrape(client.get("/metrics").text)
    reviewed = {"namespace": ns, "judge": "review", "kind": "hit", "verdict": "correct"}
    assert value(m, "vetcache_audit_verdicts_total", **reviewed) == 1


def test_metrics_match_a_scripted_mix(
    gateway_client: Callable[..., TestClient],
    embedder: SentenceTransformerEmbedder,
    fake_upstream: str,
) -> None:
    ns = f"m{uuid.uuid4().hex[:10]}"
    store = MemoryStore()
    client = scripted_gateway(gateway_client, embedder, fake_upstream, store)
    first = play_the_mix(client, store, ns)
    wait(lambda: len(verdicts(client, ns)) == 2, "the two hits were never judged")
    wait(fp_gauge_is(client, ns, 0.5), "the FP-rate gauge never showed the two verdicts")
    page = client.get("/metrics")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain")
    m = scrape(page.text)

    assert_requests_counted(m, ns)
    assert_stages_counted(m)
    assert_audits_counted(m, ns)
    usage = first.json()["usage"]
    saved = 2 * (usage["prompt_tokens"] + usage["completion_tokens"])
    assert value(m, "vetcache_tokens_saved_total", namespace=ns) == saved
    assert total(m, "vetcache_cache_errors_total") == 0

    assert_the_views_are_ready(m, ns)
    assert_a_review_is_counted(client, ns)
    summary = client.get("/admin/summary", headers=ADMIN).json()
    assert summary["requests"]["hit"] >= 2 and 0 < summary["hit_ratio"] < 1
    assert 0 < summary["latency_s"]["p50"] <= summary["latency_s"]["p99"]


def test_metrics_page_can_be_turned_off(gateway_client: Callable[..., TestClient]) -> None:
    client = gateway_client(metrics={"enabled": False})
    reply = client.get("/metrics")
    assert reply.status_code == 404 and reply.json()["error"]["code"] == "not_found"


def test_namespace_labels_are_bounded(gateway_client: Callable[..., TestClient]) -> None:
    client = gateway_client(metrics={"max_namespaces": 2})
    for name in ("a", "b", "c", "d"):
        body = {"model": "fake-gpt", "messages": [{"role": "user", "content": "hi"}]}
        client.post("/v1/chat/completions", json=body, headers={"x-vetcache-namespace": name})
    m = scrape(client.get("/metrics").text)
    names = {dict(labels)["namespace"] for (n, labels) in m if n == "vetcache_requests_total"}
    assert names == {"a", "b", "_other"}
    assert value(m, "vetcache_requests_total", namespace="_other", model="fake-gpt",
                 outcome="bypass") == 2  # fmt: skip


def test_workers_share_one_metrics_page(tmp_path: Path, fake_upstream: str) -> None:
    """Two worker processes behind one port: whichever answers the scrape, the counters
    are the sum over both (prometheus-client's multiprocess mode)."""
    port = free_port()
    config = tmp_path / "vetcache.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "port": port,
                "workers": 2,
                "cache": {"enabled": False},
                "auth": {"enabled": False},
                "model_list": [route("fake-gpt", "fake-gpt", fake_upstream)],
            }
        )
    )
    process = vetcache("serve", "--config", str(config))
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", process)
        body = {"model": "fake-gpt", "messages": [{"role": "user", "content": "hi"}]}
        sent = 40
        for _ in range(sent):
            # A new connection per request, so the kernel spreads them over both workers.
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
                assert http.post("/v1/chat/completions", json=body).status_code == 200
        for _ in range(6):
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
                m = scrape(http.get("/metrics").text)
            count = value(
                m, "vetcache_requests_total", namespace="default", model="fake-gpt",
                outcome="bypass",
            )  # fmt: skip
            assert count == sent, child_log(process)
    finally:
        stop(process)


def test_streams_are_counted_once_when_they_end(
    gateway_client: Callable[..., TestClient], fake_upstream: str
) -> None:
    client = gateway_client(
        model_list=[
            route("fake-gpt", "fake-gpt", fake_upstream),
            route("cut", "truncate", fake_upstream),
        ]
    )
    body = {"model": "fake-gpt", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with client.stream("POST", "/v1/chat/completions", json=body) as reply:
        assert reply.status_code == 200
        assert b"[DONE]" in b"".join(reply.iter_bytes())
    with client.stream("POST", "/v1/chat/completions", json={**body, "model": "cut"}) as reply:
        assert b"[DONE]" not in b"".join(reply.iter_bytes())  # the upstream broke off
    m = scrape(client.get("/metrics").text)
    labels = {"namespace": "default", "model": "fake-gpt"}
    assert value(m, "vetcache_requests_total", outcome="bypass", **labels) == 1
    assert (
        value(m, "vetcache_requests_total", namespace="default", model="cut", outcome="error") == 1
    )
    assert value(m, "vetcache_stage_duration_seconds_count", stage="upstream") == 2


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_cohort_metrics_stay_within_fixed_label_sets(
    gateway_client: Callable[..., TestClient],
) -> None:
    """Hits in 19 languages and every length, all audited: the cohort gauges on ``/metrics``
    take their labels from small fixed sets, whatever the prompts were."""
    # Threshold -1 with a meaningless embedder: every prompt hits the one entry; every
    # language is one the embedder "reads", so none is refused.
    settings = CacheSettings(threshold=-1.0, lookup_budget_ms=5000, embedder_languages=())
    client = gateway_client(
        cache=SemanticCache(settings, MemoryStore(), HashEmbedder()),
        audit={"burn_in": 1000, "sample_rate": 1.0, "near_miss_rate": 0.0},
        metrics={"refresh_s": 0.1},
    )
    rows = (FIXTURES / "languages.tsv").read_text(encoding="utf-8").splitlines()
    texts = [row.split("\t", 1)[1] for row in rows if row]
    texts += [f"Tell me about item {i}. " * (1 + i * 3) for i in range(12)]  # 24-1,000 chars

    def ask(text: str) -> str:
        body = {"model": "fake-gpt", "messages": [{"role": "user", "content": text}]}
        return str(client.post("/v1/chat/completions", json=body).headers["x-vetcache"])

    ask("How do I reset my password?")
    wait(lambda: ask("How do I reset my password?") == "hit", "the first answer was never admitted")
    assert [ask(text) for text in texts] == ["hit"] * len(texts)

    def cohorts() -> dict[str, set[str]]:
        """Label values of the cohort gauges, by dimension."""
        found: dict[str, set[str]] = {}
        for name, labels in scrape(client.get("/metrics").text):
            if name.startswith("vetcache_cohort_"):
                label = dict(labels)
                found.setdefault(label["dimension"], set()).add(label["cohort"])
        return found

    # Every hit judged (the contrast judge finds most pairs "uncertain": labelled 0, NaN
    # rate, but the cohort is there) and in the window of a refresh after.
    wait(lambda: "long" in cohorts().get("length", set()), "the hits never reached the cohorts")
    found = cohorts()
    assert set(found) == {"language", "length", "similarity", "judge", "model"}
    assert {"en", "fr", "zh", "other"} <= found["language"] <= LABELS | {"other", "und"}
    assert found["length"] == {"short", "medium", "long"}
    assert found["judge"] == {"contrast"} and found["model"] == {"fake-gpt"}
    assert len(found["similarity"]) <= 21
    series = sum(
        name.startswith("vetcache_cohort_") for name, _ in scrape(client.get("/metrics").text)
    )
    assert series <= 3 * (len(LABELS) + 2 + 3 + 21 + 1 + 1)
