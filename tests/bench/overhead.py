"""Gateway overhead on both lanes: latency and CPU vetcache adds over calling the fake
upstream directly.

Starts a ``vetcache fake-upstream`` and a ``vetcache serve`` in front of it (both on
127.0.0.1, stopped at the end) with two aliases for the same upstream model: ``direct``
(``wire: openai``, the direct lane) and ``litellm`` (``wire: litellm``, litellm's Router).
Sends the same chat request, JSON and streamed, to the upstream itself and to each alias at
concurrency 1 and 16, and prints p50/p99, the added p50/p99 over the direct call, the
gateway's CPU per request (its process's user + system time, from ``/proc/<pid>/stat``,
read before and after each cell) and requests/s per core of gateway CPU. The cache is off:
this measures the pass-through (auth, validation, the lane, encoding); ``hit_path.py``
measures hits. A benchmark, not a test: it prints numbers and judges nothing, since timing
on a shared 2-core machine is too noisy to assert.

    .venv/bin/python tests/bench/overhead.py [--requests 2000] [--latency-ms 0] [--only json]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.conftest import free_port, stop, vetcache, wait_http

MESSAGES = [
    {"role": "system", "content": "You are a concise assistant."},
    {"role": "user", "content": "Summarize the plot of Hamlet in two sentences."},
]
TARGETS = ("upstream", "direct", "litellm")
"""The upstream called directly, then the gateway's two lanes."""
TICKS = os.sysconf("SC_CLK_TCK")


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def run(url: str, model: str, requests: int, concurrency: int, stream: bool) -> list[float]:
    """Per-request latencies in ms, ``requests`` in all from ``concurrency`` workers (an
    aiohttp client: the load generator shares the machine, so it should be cheap)."""
    body = orjson.dumps({"model": model, "messages": MESSAGES, "stream": stream})
    headers = {"Content-Type": "application/json"}
    latencies: list[float] = []
    remaining = requests
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status != 200:
                    raise RuntimeError(f"{url} {model}: {response.status}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


async def cell(
    urls: dict[str, str], gateway_pid: int, concurrency: int, stream: bool, requests: int
) -> None:
    """One row per target at one concurrency and mode."""
    for target in TARGETS:  # warm up every path
        await run(urls[target], _model(target), 200, concurrency, stream)
    p50s: dict[str, float] = {}
    p99s: dict[str, float] = {}
    for target in TARGETS:
        cpu_before, started = cpu_seconds(gateway_pid), time.perf_counter()
        samples = await run(urls[target], _model(target), requests, concurrency, stream)
        elapsed, cpu = time.perf_counter() - started, cpu_seconds(gateway_pid) - cpu_before
        p50s[target], p99s[target] = percentile(samples, 0.5), percentile(samples, 0.99)
        row = (
            f"{'stream' if stream else 'json':>6} {concurrency:>4} {target:>8} "
            f"{p50s[target]:>7.2f} {p99s[target]:>7.2f} {statistics.fmean(samples):>7.2f} "
            f"{len(samples) / elapsed:>7.0f}"
        )
        if target != "upstream":
            row += (
                f" {p50s[target] - p50s['upstream']:>+8.2f} {p99s[target] - p99s['upstream']:>+8.2f}"
                f" {cpu * 1000 / len(samples):>8.3f} {len(samples) / max(cpu, 1e-9):>8.0f}"
            )
        print(row, flush=True)


def _model(target: str) -> str:
    return "fake-gpt" if target == "upstream" else target


async def measure(urls: dict[str, str], gateway_pid: int, args: argparse.Namespace) -> None:
    print(f"fake upstream latency {args.latency_ms} ms, {args.requests} requests per cell")
    print(
        f"{'mode':>6} {'conc':>4} {'target':>8} {'p50':>7} {'p99':>7} {'mean':>7} {'req/s':>7}"
        f" {'+p50':>8} {'+p99':>8} {'cpu ms':>8} {'req/cpu-s':>8}"
    )
    modes = {"json": (False,), "stream": (True,)}.get(args.only, (False, True))
    for stream in modes:
        for concurrency in (1, 16):
            await cell(urls, gateway_pid, concurrency, stream, args.requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--only", choices=("json", "stream"))
    args = parser.parse_args()

    upstream_port, gateway_port = free_port(), free_port()
    fake = vetcache(
        "fake-upstream", "--port", str(upstream_port), "--latency-ms", str(args.latency_ms)
    )
    base = f"http://127.0.0.1:{upstream_port}/v1"
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.yaml"
        config.write_text(
            "auth: {enabled: false}\naccess_log: false\nlog_level: warning\n"
            "cache: {enabled: false}\nmodel_list:\n"
            + "".join(
                f"  - {{model_name: {lane}, model: openai/fake-gpt, api_base: '{base}', "
                f"wire: {wire}, params: {{input_cost_per_token: 0.00000015, "
                "output_cost_per_token: 0.0000006}}\n"
                for lane, wire in (("direct", "openai"), ("litellm", "litellm"))
            )
        )
        gateway = vetcache("serve", "--config", str(config), "--port", str(gateway_port))
        try:
            wait_http(f"{base}/models", fake)
            wait_http(f"http://127.0.0.1:{gateway_port}/readyz", gateway)
            chat = f"http://127.0.0.1:{gateway_port}/v1/chat/completions"
            urls = {"upstream": f"{base}/chat/completions", "direct": chat, "litellm": chat}
            asyncio.run(measure(urls, gateway.pid, args))
        finally:
            stop(gateway)
            stop(fake)


if __name__ == "__main__":
    main()
