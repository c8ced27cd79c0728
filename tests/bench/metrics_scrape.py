"""Scrape cost: ``/metrics`` with 50 namespaces (target: renders in under 50 ms).

Fills every metric the way a busy gateway would (50 namespaces x 3 models x 4 outcomes of
requests, every histogram observed, verdicts for every judge, every gauge set), then times
three ways of serving it: ``render`` on one process's registry, ``GET /metrics`` through the
app, and ``render`` in multiprocess mode reading the files of 4 worker processes (what
``serve --workers 4`` does on each scrape).

    .venv/bin/python tests/bench/metrics_scrape.py
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

NAMESPACES = 50
MODELS = ("gpt-4o-mini", "gpt-4o", "claude-haiku")
ROUNDS = 200


def fill(metrics: object) -> None:
    """Observe a busy gateway's worth of series."""
    from audit.stats import FPRate
    from cache import Outcome, Refusal
    from proxy.metrics import Metrics

    assert isinstance(metrics, Metrics)
    rng = random.Random(7)
    names = [f"ns-{i:02d}" for i in range(NAMESPACES)]
    for name in names:
        for model in MODELS:
            for outcome in Outcome:
                metrics.request(name, model, outcome, rng.uniform(0.001, 2), rng.uniform(0.5, 1))
        for verdict in ("correct", "false_positive", "uncertain", "error"):
            for judge in ("contrast/2", "review", "feedback"):
                metrics.verdicts.labels(name, verdict, judge, "hit").inc()
        metrics.saved(name, 120, 0.0004)
        for reason in Refusal:
            metrics.refusals.labels(name, reason.value).inc()
        metrics.refusals.labels(name, "contrast").inc()
        metrics.jobs.labels(name, "hit").inc()
        metrics.jobs.labels(name, "near_miss").inc()
    for stage in ("exact_lookup", "embed", "vector_search", "upstream", "admit", "judge"):
        for _ in range(100):
            metrics.stage(stage, rng.uniform(0.0005, 1))
    for kind in ("store", "embedder", "timeout", "audit"):
        metrics.cache_error(kind)
    metrics.set_fp_rates(
        {
            n: FPRate(false_positives=3, labelled=100, rate=0.03, lower=0.01, upper=0.08)
            for n in names
        }
    )
    metrics.set_thresholds(0.95, {n: 0.93 for n in names})
    metrics.set_entries(dict.fromkeys(names, 1000))
    metrics.queue_depth.set(12)
    metrics.lag.observe(1.5)


def timed(label: str, run: Callable[[], int]) -> None:
    run()  # warm up
    samples, size = [], 0
    for _ in range(ROUNDS):
        started = time.perf_counter()
        size = run()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p99 = samples[int(len(samples) * 0.99) - 1]
    print(f"{label:<44} p50 {statistics.median(samples):6.2f} ms  p99 {p99:6.2f} ms  "
          f"{size / 1024:6.1f} KiB")  # fmt: skip


def single_process() -> None:
    from fastapi.testclient import TestClient
    from prometheus_client import CollectorRegistry

    from proxy.app import create_app
    from proxy.exposition import render
    from proxy.metrics import Metrics
    from proxy.settings import Settings

    registry = CollectorRegistry()
    fill(Metrics(registry))
    timed("render(), one process", lambda: len(render(registry)[0]))

    settings = Settings(auth={"enabled": False}, cache={"enabled": False})
    app = create_app(settings)
    fill(app.state.metrics)
    with TestClient(app) as client:
        timed("GET /metrics through the app", lambda: len(client.get("/metrics").content))


CHILD = """
import sys
sys.path.insert(0, {root!r})
from prometheus_client import CollectorRegistry
from proxy.metrics import Metrics
from tests.bench.metrics_scrape import fill
fill(Metrics(CollectorRegistry()))
"""


def multi_process(workers: int = 4) -> None:
    with tempfile.TemporaryDirectory() as directory:
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": directory}
        for _ in range(workers):
            subprocess.run(
                [sys.executable, "-c", CHILD.format(root=str(ROOT))], env=env, check=True
            )
        code = (
            f"import sys, time; sys.path.insert(0, {str(ROOT)!r})\n"
            "from prometheus_client import CollectorRegistry\n"
            "from proxy.exposition import render\n"
            "from tests.bench.metrics_scrape import timed\n"
            f"timed('render(), multiprocess, {workers} workers\\' files', "
            "lambda: len(render(CollectorRegistry())[0]))\n"
        )
        subprocess.run([sys.executable, "-c", code], env=env, check=True)


def main() -> None:
    print(f"/metrics with {NAMESPACES} namespaces, {len(MODELS)} models; {ROUNDS} scrapes each")
    single_process()
    multi_process()


if __name__ == "__main__":
    main()
