"""Gateway overhead: latency added by vetcache over calling the fake upstream directly.

Starts a ``vetcache fake-upstream`` and a ``vetcache serve`` in front of it (both on
127.0.0.1, stopped at the end), sends the same chat request to each at concurrency 1 and
16, and prints p50/p99 of both and their difference. The cache is off: this measures the
pass-through (auth, validation, litellm Router, encoding); ``hit_path.py`` measures hits. A benchmark, not a test: it prints
numbers and judges nothing, since timing on a shared 2-core machine is too noisy to assert.

    .venv/bin/python tests/bench/overhead.py [--requests 2000] [--latency-ms 5] [--stream]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.conftest import free_port, stop, vetcache, wait_http

BODY = {
    "model": "fake-gpt",
    "messages": [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "Summarize the plot of Hamlet in two sentences."},
    ],
}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(url: str, requests: int, concurrency: int, stream: bool) -> list[float]:
    """Per-request latencies in ms, ``requests`` in all from ``concurrency`` workers."""
    body = {**BODY, "stream": stream}
    latencies: list[float] = []
    remaining = requests
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                response = await client.post("/chat/completions", json=body)
                await response.aread()
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(f"{url}: {response.status_code} {response.text[:200]}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


async def measure(direct: str, gateway: str, args: argparse.Namespace) -> None:
    print(
        f"fake upstream latency {args.latency_ms} ms, {args.requests} requests per cell, "
        f"stream={args.stream}"
    )
    print(f"{'conc':>4} {'target':>8} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'req/s':>8}")
    for concurrency in (1, 16):
        await run(gateway, 200, concurrency, args.stream)  # warm up both paths
        await run(direct, 200, concurrency, args.stream)
        cells = {}
        for name, url in (("direct", direct), ("vetcache", gateway)):
            started = time.perf_counter()
            samples = await run(url, args.requests, concurrency, args.stream)
            rate = len(samples) / (time.perf_counter() - started)
            cells[name] = samples
            print(
                f"{concurrency:>4} {name:>8} {percentile(samples, 0.5):>8.2f} "
                f"{percentile(samples, 0.99):>8.2f} {statistics.fmean(samples):>8.2f} {rate:>8.0f}"
            )
        p50 = percentile(cells["vetcache"], 0.5) - percentile(cells["direct"], 0.5)
        p99 = percentile(cells["vetcache"], 0.99) - percentile(cells["direct"], 0.99)
        print(f"{concurrency:>4} {'overhead':>8} {p50:>8.2f} {p99:>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--stream", action="store_true")
    args = parser.parse_args()

    upstream_port, gateway_port = free_port(), free_port()
    fake = vetcache(
        "fake-upstream", "--port", str(upstream_port), "--latency-ms", str(args.latency_ms)
    )
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.yaml"
        config.write_text(
            "auth: {enabled: false}\naccess_log: false\nlog_level: warning\n"
            "cache: {enabled: false}\nmodel_list:\n"
            "  - {model_name: fake-gpt, model: openai/fake-gpt, "
            f"api_base: 'http://127.0.0.1:{upstream_port}/v1', "
            "params: {input_cost_per_token: 0.00000015, output_cost_per_token: 0.0000006}}\n"
        )
        gateway = vetcache("serve", "--config", str(config), "--port", str(gateway_port))
        try:
            wait_http(f"http://127.0.0.1:{upstream_port}/v1/models", fake)
            wait_http(f"http://127.0.0.1:{gateway_port}/readyz", gateway)
            asyncio.run(
                measure(
                    f"http://127.0.0.1:{upstream_port}/v1",
                    f"http://127.0.0.1:{gateway_port}/v1",
                    args,
                )
            )
        finally:
            stop(gateway)
            stop(fake)


if __name__ == "__main__":
    main()
