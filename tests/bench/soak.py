"""Soak: a gateway and an audit worker on Redis Stack under steady mixed traffic, watched
for growth. Starts Redis Stack, the fake upstream (model ``sleep-50``), ``vetcache serve``
(cache capped at 300 entries, 20% of hits audited, 1000 verdicts kept) and ``vetcache
audit-worker``; sends ``--rate`` requests/s for ``--minutes``: new prompts, exact repeats and
paraphrases of recent ones (a quarter streamed), feedback on hits, a ``/metrics`` scrape every
5 s. A row a minute (errors: non-2xx, transport errors, streams without ``[DONE]``), then the
least-squares slope per series over minutes 2..N and a verdict. No prompt text is printed.

    .venv/bin/python tests/bench/soak.py [--minutes 10] [--rate 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.conftest import LOGS, ROOT, free_port, route, stop, vetcache, wait_http

NOUNS = (
    "lighthouse glacier violin tractor orchid volcano satellite bakery canoe harbor telescope "
    "cactus piano submarine vineyard bicycle compass lantern meadow robot castle beehive "
    "dolphin quarry kettle saddle tunnel windmill parrot cathedral blizzard marathon compost "
    "origami typewriter avalanche lagoon chimney falcon tapestry"
).split()
TEMPLATES = (  # with 3 distinct nouns: no two of 300 such prompts are over 0.92 similar
    "How would a {} change the way people use a {} near a {}?",
    "Write a short story about a {}, a {} and a {}.",
    "What do a {} and a {} have in common with a {}?",
    "Explain how to build a {} out of parts of a {} and a {}.",
    "Why might a {} be more useful than a {} during a {}?",
    "Describe a day at a {} that sells a {} shaped like a {}.",
)
PREFIXES = ("Quick question: ", "Please answer: ")  # 0.98 or more to the bare prompt
MIX = {"miss": 0.3, "semantic": 0.3, "exact": 0.3, "feedback": 0.1}
STREAMED = 0.25
SCRAPE_EVERY_S = 5
CAP = 300
# series -> (tolerated slope per minute as a share of its mean level, absolute floor)
TOLERANCE = {
    "gw_rss_mb": (0.01, 0.0), "gw_fds": (0.0, 0.5), "wk_rss_mb": (0.01, 0.0),
    "wk_fds": (0.0, 0.5), "redis_mb": (0.01, 0.0), "keys": (0.01, 0.0),
    "stream": (0.01, 5.0), "p99_ms": (0.05, 1.0),
}  # fmt: skip
COLUMNS = ("sent", "err", "5xx", "hit%", "p50_ms", *TOLERANCE)


@dataclass
class Minute:
    """What finished in one minute (``sent``: what started in it); latencies of chats."""

    sent: int = 0
    errors: int = 0
    server_errors: int = 0
    hits: int = 0
    latencies: list[float] = field(default_factory=list)


class Traffic:
    """Open-loop mixed traffic and what came of it."""

    def __init__(self, http: httpx.AsyncClient, seed: int = 7) -> None:
        self.http = http
        self.rng = random.Random(seed)
        self.minute = Minute()
        self.statuses: Counter[int] = Counter()  # 0: transport error, -1: stream cut short
        self.outcomes: Counter[str] = Counter()  # "kind/x-vetcache"
        self.recent: deque[str] = deque(maxlen=100)  # well inside CAP: still cached
        self.hit_ids: deque[str] = deque(maxlen=50)

    async def call(self, method: str, path: str, body: Any = None) -> httpx.Response | None:
        self.minute.sent += 1
        started = time.perf_counter()
        try:
            reply: httpx.Response | None = await self.http.request(method, path, json=body)
        except httpx.HTTPError:
            reply = None
        status = 0 if reply is None else reply.status_code
        if reply is not None and body and body.get("stream") and status == 200:
            status = 200 if reply.content.rstrip().endswith(b"data: [DONE]") else -1
        self.statuses[status] += 1
        minute = self.minute  # the minute it finished in
        minute.errors += not 200 <= status < 300
        minute.server_errors += status >= 500
        if path == "/v1/chat/completions":
            minute.latencies.append((time.perf_counter() - started) * 1000)
        return reply

    async def chat(self, kind: str) -> None:
        if kind == "miss" or not self.recent:
            kind, text = "miss", self.rng.choice(TEMPLATES).format(*self.rng.sample(NOUNS, 3))
        elif kind == "exact":
            text = self.rng.choice(self.recent)
        else:
            text = self.rng.choice(PREFIXES) + self.rng.choice(self.recent)
        messages = [{"role": "user", "content": text}]
        body = {"model": "fake-gpt", "messages": messages, "stream": self.rng.random() < STREAMED}
        reply = await self.call("POST", "/v1/chat/completions", body)
        outcome = "failed" if reply is None else reply.headers.get("x-vetcache", "none")
        self.outcomes[f"{kind}/{outcome}"] += 1
        if reply is not None and reply.is_success:
            if kind == "miss":
                self.recent.append(text)
            if outcome == "hit":
                self.minute.hits += 1
                self.hit_ids.append(reply.headers["x-request-id"])

    async def feedback(self) -> None:
        if not self.hit_ids:
            return await self.chat("exact")
        body = {"request_id": self.hit_ids.popleft(), "correct": self.rng.random() > 0.2}
        reply = await self.call("POST", "/v1/feedback", body)
        self.outcomes[f"feedback/{0 if reply is None else reply.status_code}"] += 1

    async def send(self, rate: float, total: int, start: float) -> None:
        """``total`` requests at ``rate`` per second, each started on schedule whatever the
        earlier ones are doing (an open loop: a slow gateway does not slow the load)."""
        running: set[asyncio.Task[None]] = set()
        kinds, weights = list(MIX), list(MIX.values())
        for i in range(total):
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            kind = self.rng.choices(kinds, weights)[0]
            task = asyncio.create_task(self.feedback() if kind == "feedback" else self.chat(kind))
            running.add(task)
            task.add_done_callback(running.discard)
        if running:
            await asyncio.wait(running, timeout=60)

    async def scrape(self, seconds: float, start: float) -> None:
        for k in range(1, int(seconds // SCRAPE_EVERY_S)):
            await asyncio.sleep(max(0.0, start + k * SCRAPE_EVERY_S - time.monotonic()))
            await self.call("GET", "/metrics")


def usage(pid: int) -> tuple[float, int]:
    """RSS (MB) and open fds of ``pid`` and all its descendants."""
    pids, rss_kb, fds = [pid], 0, 0
    for parent in pids:  # grows while walked: children, then theirs
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            pids.extend(int(child) for child in children.read_text().split())
    for each in pids:
        status = Path(f"/proc/{each}/status").read_text()
        rss_kb += int(status.split("VmRSS:")[1].split()[0])
        fds += len(os.listdir(f"/proc/{each}/fd"))
    return rss_kb / 1024, fds


async def sample(
    traffic: Traffic, store: aioredis.Redis, processes: dict[str, subprocess.Popen[bytes]]
) -> dict[str, float]:
    for name, process in processes.items():
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}")
    done, traffic.minute = traffic.minute, Minute()
    gw_rss, gw_fds = usage(processes["gateway"].pid)
    wk_rss, wk_fds = usage(processes["worker"].pid)
    memory = await store.info("memory")
    chats = len(done.latencies)
    cuts = statistics.quantiles(done.latencies, n=100) if chats > 1 else [float("nan")] * 99
    return {
        "sent": done.sent, "err": done.errors, "5xx": done.server_errors,
        "hit%": 100 * done.hits / max(chats, 1), "p50_ms": cuts[49],
        "gw_rss_mb": gw_rss, "gw_fds": gw_fds, "wk_rss_mb": wk_rss, "wk_fds": wk_fds,
        "redis_mb": memory["used_memory"] / 2**20, "keys": await store.dbsize(),
        "stream": await store.xlen("vc:audit:jobs"), "p99_ms": cuts[98],
    }  # fmt: skip


def trend(rows: list[dict[str, float]]) -> None:
    """Slope per minute over minutes 2..N (all minutes when there are fewer than 3)."""
    fit = rows[1:] if len(rows) > 2 else rows
    if len(fit) < 2:
        return
    growing = []
    print(f"\n{'series':>10} {'slope/min':>10} {'tolerance':>10} {'first':>10} {'last':>10} growth")
    for name, (share, floor) in TOLERANCE.items():
        ys = [row[name] for row in fit]
        slope = statistics.linear_regression(range(len(ys)), ys).slope
        tolerance = max(share * statistics.fmean(ys), floor)
        growth = f"{100 * (ys[-1] - ys[0]) / ys[0]:+.1f}%" if ys[0] else f"{ys[-1] - ys[0]:+.0f}"
        print(f"{name:>10} {slope:>10.3f} {tolerance:>10.3f} {ys[0]:>10.1f} {ys[-1]:>10.1f} {growth}")  # fmt: skip
        if slope > tolerance:
            growing.append(name)
    first = len(rows) - len(fit) + 1
    print(f"minutes {first}..{len(rows)}: " + ("GROWING: " + ", ".join(growing) if growing else "no growth trend"))  # fmt: skip


async def report(
    traffic: Traffic, store: aioredis.Redis, processes: dict[str, subprocess.Popen[bytes]]
) -> None:
    print("\nstatuses:", dict(sorted(traffic.statuses.items())))
    print("outcomes:", dict(sorted(traffic.outcomes.items())))
    counts: Counter[str] = Counter()
    example: dict[str, bytes] = {}
    async for key in store.scan_iter(count=1000):
        parts = key.decode().split(":")
        prefix = ":".join(parts[: 3 if parts[1] == "{audit}" else 2])
        counts[prefix] += 1
        example.setdefault(prefix, key)
    print("keys by prefix: count x bytes of one (its TTL s)")
    for prefix, count in counts.most_common():
        size, ttl = await store.memory_usage(example[prefix]), await store.ttl(example[prefix])
        print(f"  {prefix:<22} {count:>6} x {size:>6} ({ttl})")
    for name, process in processes.items():  # logs never hold bodies: safe to quote
        lines = LOGS[process.pid].read_text(errors="replace").splitlines()
        common = Counter(line.split('"message":"')[-1][:70] for line in lines).most_common(3)
        print(f"{name} stderr: {len(lines)} lines; most common: {common}")


async def soak(redis_url: str, minutes: int, rate: float) -> None:
    upstream_port, gateway_port, worker_port = free_port(), free_port(), free_port()
    upstream = f"http://127.0.0.1:{upstream_port}/v1"
    settings = {
        "redis_url": redis_url, "auth": {"enabled": False}, "access_log": False,
        "cache": {"max_entries_per_namespace": CAP},
        "audit": {"sample_rate": 0.2, "retention": 1000},
        "model_list": [route("fake-gpt", "sleep-50", upstream)],
    }  # fmt: skip
    processes: dict[str, subprocess.Popen[bytes]] = {}
    store = aioredis.Redis.from_url(redis_url)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "soak.yaml"
        config.write_text(yaml.safe_dump(settings))
        try:
            processes["upstream"] = vetcache("fake-upstream", "--port", str(upstream_port))
            processes["gateway"] = vetcache("serve", "--config", str(config), "--port", str(gateway_port))  # fmt: skip
            processes["worker"] = vetcache("audit-worker", "--config", str(config), "--name", "soak", "--metrics-port", str(worker_port))  # fmt: skip
            wait_http(f"{upstream}/models", processes["upstream"])
            wait_http(f"http://127.0.0.1:{gateway_port}/readyz", processes["gateway"], timeout=180)
            wait_http(f"http://127.0.0.1:{worker_port}/metrics", processes["worker"], timeout=180)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway_port}", timeout=30) as http:  # fmt: skip
                traffic = Traffic(http)
                start, rows = time.monotonic(), []
                print(f"{minutes} min, {rate:g} req/s, mix {MIX}, {STREAMED:.0%} streamed")
                print(f"{'min':>3} " + " ".join(f"{c:>9}" for c in COLUMNS))
                sending = asyncio.gather(
                    traffic.send(rate, int(rate * 60 * minutes), start),
                    traffic.scrape(60 * minutes, start),
                )
                for minute in range(1, minutes + 1):
                    await asyncio.sleep(max(0.0, start + 60 * minute - time.monotonic()))
                    rows.append(await sample(traffic, store, processes))
                    cells = (rows[-1][c] for c in COLUMNS)
                    print(
                        f"{minute:>3}",
                        *(f"{v:>9{'' if isinstance(v, int) else '.1f'}}" for v in cells),
                    )
                await sending
            trend(rows)
            await report(traffic, store, processes)
        finally:
            for process in reversed(processes.values()):
                stop(process)
            await store.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--rate", type=float, default=10.0, help="requests per second")
    args = parser.parse_args()
    script, port = str(ROOT / "scripts" / "redis-stack.sh"), str(free_port())
    subprocess.run(["bash", script, "start", port], check=True, capture_output=True, timeout=300)
    try:
        asyncio.run(soak(f"redis://127.0.0.1:{port}/0", args.minutes, args.rate))
    finally:
        subprocess.run(["bash", script, "stop", port], check=False, capture_output=True, timeout=60)


if __name__ == "__main__":
    main()
