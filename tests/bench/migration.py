"""Migration between embedding versions: its throughput, and the hit path while it runs.

Fills one namespace on a Redis Stack of its own (``scripts/redis-stack.sh``, 127.0.0.1) with
N entries (default 5000) made by version A, the bundled model on ``onnx-int8`` (the default
backend), as the gateway admits them (one scope per tenant and model; prompts from the
shared data, ``../shared/data``, else generated). Version B is the same model on
``onnx-fp32``: another fingerprint, a real model's cost. Then measures:

- semantic-hit lookups (``SemanticCache.lookup`` with A, a lower-cased variant of an
  admitted prompt: embed + KNN + policy), p50/p99 at concurrency 1 and 8, without a migration;
- the same while ``Migrator`` copies the namespace to B at the default rate limit, and
  unlimited; and the migration's throughput (entries re-embedded per second) in each case;
- the unlimited migration alone (no lookups), for the ceiling.

Numbers only; nothing is asserted. Bounded: a fixed number of lookups, migrations cancelled
after their window.

    .venv/bin/python tests/bench/migration.py [--entries 5000] [--requests 300]
        [--rates 100 0] [--redis-url redis://127.0.0.1:PORT/0]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cache import CacheSettings, build_embedder
from cache.embedder import Embedder
from cache.migration import DEFAULT_RATE_PER_S, Migrator
from cache.schema import CacheEntry, Outcome
from cache.semantic import SemanticCache
from cache.stores.redis import RedisStore
from cache.versions import MigrationProgress
from tests.bench.shared_data import FOW_PAIRS, PAWS_PAIRS, STS_PAIRS
from tests.conftest import ROOT, free_port

ANSWER = '{"choices": [{"message": {"role": "assistant", "content": "ok"}}]}'
TENANTS = ("t1", "t2", "t3", "t4")


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def prompts(count: int) -> list[str]:
    """``count`` distinct prompts: the shared data's texts, then generated ones."""
    texts: dict[str, None] = {}
    for path in (STS_PAIRS, FOW_PAIRS, PAWS_PAIRS):
        if path.exists():
            with path.open() as handle:
                for row in csv.DictReader(handle, delimiter="\t"):
                    texts[row["text_a"]] = texts[row["text_b"]] = None
    for i in range(count):
        texts[f"How do I configure option {i} of the billing service for team {i % 97}?"] = None
    return list(texts)[:count]


def body(text: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}]}


async def fill(cache: SemanticCache, embedder: Embedder, namespace: str, texts: list[str]) -> None:
    """Entries as the gateway admits them, with the key parts a migration needs."""

    async def put(i: int, text: str) -> None:
        key = cache.key(body(text), TENANTS[i % len(TENANTS)], namespace)
        entry = CacheEntry(
            id=uuid.uuid4().hex, scope=key.scope, exact=key.exact, namespace=namespace,
            tenant=key.tenant, model="m", text=text, response=ANSWER,
            embedder=embedder.fingerprint, base=key.base, prompt=key.prompt,
            created_at=time.time(),
        )  # fmt: skip
        await cache.store.put(entry, await embedder.embed(text), 86400, None)

    for start in range(0, len(texts), 64):
        chunk = texts[start : start + 64]
        await asyncio.gather(*(put(start + i, text) for i, text in enumerate(chunk)))


async def lookups(
    cache: SemanticCache, namespace: str, texts: list[str], requests: int, concurrency: int
) -> tuple[list[float], float]:
    """Latencies (ms) of ``requests`` semantic lookups by ``concurrency`` workers; hit share."""
    latencies: list[float] = []
    hits = 0
    remaining = requests

    async def worker() -> None:
        nonlocal remaining, hits
        while remaining > 0:
            remaining -= 1
            i = remaining % len(texts)
            variant = texts[i].lower().rstrip("?. ")
            key = cache.key(body(variant), TENANTS[i % len(TENANTS)], namespace)
            started = time.perf_counter()
            found = await cache.lookup(key, 0.8)
            latencies.append((time.perf_counter() - started) * 1000)
            hits += found.outcome == Outcome.HIT

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, hits / requests


async def measure(
    cache: SemanticCache, namespace: str, texts: list[str], requests: int, label: str
) -> None:
    for concurrency in (1, 8):
        await lookups(cache, namespace, texts, 20, concurrency)  # warm-up
        latencies, hit_share = await lookups(cache, namespace, texts, requests, concurrency)
        print(
            f"  {label:<28} c={concurrency}: p50 {pct(latencies, 0.5):6.2f} ms, "
            f"p99 {pct(latencies, 0.99):6.2f} ms, hits {hit_share:.0%}"
        )


async def migrating(
    store: RedisStore, source: Embedder, target: Embedder, namespace: str, rate: float | None
) -> asyncio.Task[Any]:
    """A migration to ``target`` started afresh (earlier copies purged)."""
    await store.purge_version(namespace, target.fingerprint)
    now = time.time()
    await store.set_migration(
        MigrationProgress(namespace=namespace, source=source.fingerprint,
                          target=target.fingerprint, started_at=now, updated_at=now)
    )  # fmt: skip
    migrator = Migrator(store, source, target, rate_per_s=rate)
    return asyncio.create_task(migrator.run(namespace))


async def throughput(
    store: RedisStore, task: asyncio.Task[Any], namespace: str, target: str
) -> str:
    """The migration's entries re-embedded per second, from its saved progress (copied by
    the last saved batch, over the time to it); then it is cancelled."""
    progress = await store.migration(namespace, target)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    if progress is None or progress.copied == 0:
        return "nothing copied yet"
    elapsed = progress.updated_at - progress.started_at
    done = " (done)" if progress.done else ""
    return f"{progress.copied} copied in {elapsed:.1f} s{done}: {progress.copied / elapsed:.0f} entries/s"


async def run(url: str, entries: int, requests: int, rates: list[float]) -> None:
    source = build_embedder(CacheSettings(embedding_backend="onnx-int8"))
    target = build_embedder(CacheSettings(embedding_backend="onnx-fp32"))
    store = RedisStore(url)
    cache = SemanticCache(CacheSettings(lookup_budget_ms=5000, threshold=0.8), store, source)
    await cache.open()
    await target.open()
    for text in ("warm up", "the second model's first runs are slow"):
        await target.embed(text)
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    texts = prompts(entries)
    started = time.perf_counter()
    await fill(cache, source, namespace, texts)
    filled = time.perf_counter() - started
    print(f"{len(texts)} entries in {len(TENANTS)} scopes, filled in {filled:.0f} s")
    print(f"A: {source.fingerprint}\nB: {target.fingerprint}")
    try:
        await measure(cache, namespace, texts, requests, "no migration")
        for rate in [r or None for r in rates]:
            task = await migrating(store, source, target, namespace, rate)
            label = f"migrating at {rate:.0f}/s" if rate else "migrating unlimited"
            await measure(cache, namespace, texts, requests, label)
            result = await throughput(store, task, namespace, target.fingerprint)
            print(f"  -> the migration under those lookups: {result}")
        task = await migrating(store, source, target, namespace, None)
        await asyncio.wait([task], timeout=20)  # bounded window
        print(f"  unlimited, alone: {await throughput(store, task, namespace, target.fingerprint)}")
    finally:
        await store.purge_version(namespace, target.fingerprint)
        await store.purge_version(namespace, source.fingerprint)
        await cache.close()
        await target.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument(
        "--rates", type=float, nargs="+", default=[DEFAULT_RATE_PER_S, 0],
        help="migration rate limits to measure, entries/s (0: unlimited)",
    )  # fmt: skip
    parser.add_argument("--redis-url", help="a Redis Stack to use (default: start one)")
    args = parser.parse_args()
    if args.redis_url:
        asyncio.run(run(args.redis_url, args.entries, args.requests, args.rates))
        return
    script = str(ROOT / "scripts" / "redis-stack.sh")
    port = str(free_port())
    subprocess.run(["bash", script, "start", port], check=True, capture_output=True)
    try:
        asyncio.run(run(f"redis://127.0.0.1:{port}/0", args.entries, args.requests, args.rates))
    finally:
        subprocess.run(["bash", script, "stop", port], check=False, capture_output=True)


if __name__ == "__main__":
    main()
