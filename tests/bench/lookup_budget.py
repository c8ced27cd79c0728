"""Lookup budget under load: the gateway's added latency over the upstream, by concurrency.

Starts Redis Stack (``scripts/redis-stack.sh``, or ``--redis-url``), the fake upstream
(``--upstream-ms`` per answer) and ``vetcache serve`` with the real default embedder (bundled
model, ONNX int8) and ``cache.lookup_budget_ms`` (``--budget-ms``, default 50), all on
127.0.0.1. Seeds ``--seed`` questions, then sends a mixed load for ``--seconds`` at each
concurrency in ``--concurrency`` (default 1, 8, 32; closed loop: each worker sends its next
request when its last one ended):

- 30% misses (a new question), 10% streams (a new question, ``stream: true``),
- 30% exact repeats and 30% paraphrases (lower-cased, unpunctuated: semantic hits) of seeded
  questions.

Per level it prints the gateway's added latency (the client's time minus the ``upstream``
stage of the request's access line) p50/p99/max, the outcomes, the share of lookups that
failed open and why (``vetcache_cache_errors_total{kind}``: shed, timeout), the ``lookup``
stage (how long requests waited for the cache), the gateway's CPU use, the load average, and
where the slowest 1% spent their time (the access line's stages).
The goal (issue 17): p99 added <= budget + 25 ms at every level. Numbers only; nothing is
asserted.

    .venv/bin/python tests/bench/lookup_budget.py [--seconds 30] [--concurrency 1 8 32]
        [--budget-ms 50] [--upstream-ms 50] [--redis-url redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.conftest import LOGS, ROOT, free_port, stop, vetcache, wait_http

WORDS = (
    "lighthouse glacier violin tractor orchid volcano satellite bakery canoe harbor telescope "
    "cactus piano submarine vineyard bicycle compass lantern meadow robot castle beehive"
).split()
TEMPLATES = (
    "How would a {} change the way people use a {}?",
    "What do a {} and a {} have in common?",
    "Explain how to build a {} out of parts of a {}.",
    "Why might a {} be more useful than a {}?",
)
MIX = (("miss", 0.3), ("stream", 0.1), ("exact", 0.3), ("semantic", 0.3))
NAMESPACE = "budget-bench"


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def question(rng: random.Random) -> str:
    first, second = rng.sample(WORDS, 2)
    return rng.choice(TEMPLATES).format(first, second) + f" (case {rng.randrange(10**9)})"


def variant(text: str) -> str:
    return re.sub(r"[?.()]", "", text.lower())


@dataclass
class Reply:
    kind: str
    seconds: float
    outcome: str
    request_id: str


class Load:
    """The closed-loop mixed load against one gateway."""

    def __init__(self, url: str, seeded: list[str], seed: int) -> None:
        self.url = url
        self.seeded = seeded
        self.rng = random.Random(seed)

    def request(self) -> tuple[str, dict[str, object]]:
        roll, kind = self.rng.random(), "semantic"
        for name, share in MIX:
            if roll < share:
                kind = name
                break
            roll -= share
        if kind in ("miss", "stream"):
            text = question(self.rng)
        else:
            text = self.rng.choice(self.seeded)
            text = text if kind == "exact" else variant(text)
        body: dict[str, object] = {
            "model": "fake-gpt",
            "messages": [{"role": "user", "content": text}],
        }
        if kind == "stream":
            body["stream"] = True
        return kind, body

    async def ask(self, client: aiohttp.ClientSession, kind: str, body: object) -> Reply:
        headers = {"x-vetcache-namespace": NAMESPACE}
        started = time.perf_counter()
        async with client.post("/v1/chat/completions", json=body, headers=headers) as reply:
            await reply.read()
            if reply.status != 200:
                raise RuntimeError(f"{reply.status}: {(await reply.text())[:200]}")
        return Reply(
            kind,
            time.perf_counter() - started,
            reply.headers.get("x-vetcache", "?"),
            reply.headers.get("x-request-id", ""),
        )

    async def run(self, concurrency: int, seconds: float) -> list[Reply]:
        replies: list[Reply] = []
        until = time.monotonic() + seconds
        connector = aiohttp.TCPConnector(limit=concurrency + 4, keepalive_timeout=2)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(self.url, connector=connector, timeout=timeout) as c:

            async def worker() -> None:
                while time.monotonic() < until:
                    kind, body = self.request()
                    replies.append(await self.ask(c, kind, body))

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return replies


def access_lines(log: Path, offset: int) -> tuple[dict[str, dict[str, float]], int]:
    """Stage timings per request id from the gateway's access lines after ``offset``."""
    timings: dict[str, dict[str, float]] = {}
    with log.open("rb") as handle:
        handle.seek(offset)
        data = handle.read()
    for line in data.splitlines():
        if b"timings_ms" not in line:
            continue
        record = orjson.loads(line)
        timings[record["request_id"]] = record.get("timings_ms") or {}
    return timings, offset + len(data)


async def cache_errors(url: str) -> Counter[str]:
    async with aiohttp.ClientSession(url) as client, client.get("/metrics") as reply:
        text = await reply.text()
    counts: Counter[str] = Counter()
    for kind, value in re.findall(r'vetcache_cache_errors_total\{kind="(\w+)"\} (\S+)', text):
        counts[kind] += int(float(value))
    return counts


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(
    concurrency: int,
    replies: list[Reply],
    timings: dict[str, dict[str, float]],
    errors: Counter[str],
    cpu: float,
    seconds: float,
) -> None:
    added: list[tuple[float, Reply, dict[str, float]]] = []
    for reply in replies:
        stages = timings.get(reply.request_id, {})
        added.append((reply.seconds * 1000 - stages.get("upstream", 0.0), reply, stages))
    values = [a for a, _, _ in added]
    outcomes = Counter(r.outcome for r in replies)
    lookups = outcomes["hit"] + outcomes["miss"] + outcomes["fail_open"]
    print(
        f"c={concurrency:<3} {len(replies) / seconds:6.0f} req/s  added p50 {pct(values, 0.5):6.1f}"
        f"  p99 {pct(values, 0.99):7.1f}  max {max(values):7.1f} ms  fail_open "
        f"{outcomes['fail_open'] / max(1, lookups):6.1%} (shed {errors['shed'] / max(1, lookups):.1%},"
        f" timeout {errors['timeout'] / max(1, lookups):.1%})  gateway CPU {cpu / seconds:4.0%}"
        f"  load {os.getloadavg()[0]:.2f}"
    )  # fmt: skip
    print(f"       outcomes {dict(outcomes)}")
    waited = [stages["lookup"] for _, _, stages in added if "lookup" in stages]
    if waited:  # the cache's own stage: how long the request waited for its lookup
        print(f"       lookup stage: p50 {pct(waited, 0.5):.1f}  p99 {pct(waited, 0.99):.1f}  "
              f"max {max(waited):.1f} ms")  # fmt: skip
    for kind in ("exact", "semantic", "miss", "stream"):
        of_kind = [a for a, r, _ in added if r.kind == kind]
        if of_kind:
            print(f"       {kind:>8}: added p50 {pct(of_kind, 0.5):6.1f}  p99 "
                  f"{pct(of_kind, 0.99):7.1f} ms ({len(of_kind)})")  # fmt: skip
    slowest = sorted(added, key=lambda item: item[0])[-max(1, len(added) // 100) :]
    spent: Counter[str] = Counter()
    for _, _, stages in slowest:
        spent.update({k: v for k, v in stages.items() if k not in ("upstream", "admit")})
    inside = {k: round(v / len(slowest), 1) for k, v in spent.items()}
    mean = sum(a for a, _, _ in slowest) / len(slowest)
    print(f"       slowest 1% ({len(slowest)}): added {mean:.1f} ms on average; in stages "
          f"{inside}; the rest is HTTP, parsing and waiting for the event loop")  # fmt: skip


async def seed(url: str, count: int, rng: random.Random) -> list[str]:
    texts = [question(rng) for _ in range(count)]
    async with aiohttp.ClientSession(url) as client:
        for text in texts:
            body = {"model": "fake-gpt", "messages": [{"role": "user", "content": text}]}
            headers = {"x-vetcache-namespace": NAMESPACE}
            async with client.post("/v1/chat/completions", json=body, headers=headers) as reply:
                await reply.read()
    await asyncio.sleep(1.0)  # admissions land after the answers
    return texts


def config(path: Path, redis_url: str, upstream: str, budget_ms: float) -> None:
    path.write_text(
        f"auth: {{enabled: false}}\naccess_log: true\nlog_level: info\nlog_format: json\n"
        f"redis_url: '{redis_url}'\n"
        f"cache: {{lookup_budget_ms: {budget_ms}, threshold: 0.85}}\n"
        "audit: {enabled: false}\n"
        f"model_list:\n  - {{model_name: fake-gpt, model: openai/fake-gpt, api_base: '{upstream}'}}\n"
    )  # fmt: skip


async def bench(args: argparse.Namespace, redis_url: str) -> None:
    upstream_port, gateway_port = free_port(), free_port()
    fake = vetcache("fake-upstream", "--port", str(upstream_port),
                    "--latency-ms", str(args.upstream_ms))  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        config(path, redis_url, f"http://127.0.0.1:{upstream_port}/v1", args.budget_ms)
        gateway = vetcache("serve", "--config", str(path), "--port", str(gateway_port))
        try:
            wait_http(f"http://127.0.0.1:{upstream_port}/v1/models", fake)
            wait_http(f"http://127.0.0.1:{gateway_port}/readyz", gateway, timeout=300)
            url = f"http://127.0.0.1:{gateway_port}"
            rng = random.Random(17)
            seeded = await seed(url, args.seed, rng)
            log = LOGS[gateway.pid]
            offset = log.stat().st_size
            print(f"budget {args.budget_ms:.0f} ms, upstream {args.upstream_ms:.0f} ms, "
                  f"{args.seconds:.0f} s per level, {len(seeded)} seeded questions, "
                  f"{os.cpu_count()} cores")  # fmt: skip
            for level in args.concurrency:
                load = Load(url, seeded, seed=level)
                before, cpu = await cache_errors(url), cpu_seconds(gateway.pid)
                started = time.monotonic()
                replies = await load.run(level, args.seconds)
                elapsed = time.monotonic() - started
                cpu = cpu_seconds(gateway.pid) - cpu
                errors = await cache_errors(url) - before
                await asyncio.sleep(0.5)  # the last access lines
                timings, offset = access_lines(log, offset)
                report(level, replies, timings, errors, cpu, elapsed)
        finally:
            stop(gateway)
            stop(fake)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--budget-ms", type=float, default=50.0)
    parser.add_argument("--upstream-ms", type=float, default=50.0)
    parser.add_argument("--seed", type=int, default=200, help="questions seeded first")
    parser.add_argument("--redis-url", help="a running Redis Stack (default: start one)")
    args = parser.parse_args()
    if args.redis_url:
        asyncio.run(bench(args, args.redis_url))
        return
    script = str(ROOT / "scripts" / "redis-stack.sh")
    port = str(free_port())
    subprocess.run(["bash", script, "start", port], check=True, capture_output=True)
    try:
        asyncio.run(bench(args, f"redis://127.0.0.1:{port}/0"))
    finally:
        subprocess.run(["bash", script, "stop", port], check=False, capture_output=True)


if __name__ == "__main__":
    main()
