"""Store lookup cost: one Redis Stack server against a 3-primary Redis Cluster.

Starts both with ``scripts/redis-stack.sh`` (loopback only, stopped at the end), fills each
with the same entries (``--scopes`` scopes of ``--per-scope`` entries, 384-d random unit
vectors), then times ``RedisStore.search`` at each ``--k`` (default 1 and 4: the cost of
``cache.search_k``) at concurrency 1 and 16. On a cluster a
lookup is a KNN on the scope's shard plus a pipelined HMGET of the hit (the shard's search
cannot load fields of keys outside its index name's slot), so two round trips instead of
one, and a cluster reads the fields of each of the k hits. Numbers only; nothing is asserted.

    .venv/bin/python tests/bench/cluster_lookup.py [--scopes 50] [--per-scope 200] [--k 1 4]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cache.schema import CacheEntry
from cache.stores.redis import RedisStore
from tests.conftest import ROOT, free_cluster_ports, free_port

DIM = 384
SCRIPT = str(ROOT / "scripts" / "redis-stack.sh")


def unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def pct(samples: list[float], q: float) -> float:
    return float(np.percentile(samples, q)) * 1000


async def fill(store: RedisStore, scopes: list[str], per_scope: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for scope in scopes:
        for i in range(per_scope):
            entry = CacheEntry(
                id=uuid.uuid4().hex, scope=scope, exact=uuid.uuid4().hex, namespace="bench",
                tenant="t", model="m", text=f"prompt {i}", response='{"answer": "' + "x" * 700
                + '"}', embedder="e", created_at=time.time(),
            )  # fmt: skip
            await store.put(entry, unit(rng), ttl_s=3600, cap=None)


async def measure(
    store: RedisStore, scopes: list[str], requests: int, concurrency: int, k: int
) -> str:
    rng = np.random.default_rng(7)
    queries = [(scopes[i % len(scopes)], unit(rng)) for i in range(requests)]
    samples: list[float] = []

    async def worker(mine: list[tuple[str, np.ndarray]]) -> None:
        for scope, vector in mine:
            start = time.perf_counter()
            found = await store.search(scope, vector, k=k)
            samples.append(time.perf_counter() - start)
            assert found, "every scope has entries"

    began = time.perf_counter()
    await asyncio.gather(*(worker(queries[i::concurrency]) for i in range(concurrency)))
    elapsed = time.perf_counter() - began
    return (
        f"c={concurrency:<3} p50 {pct(samples, 50):6.2f} ms  p99 {pct(samples, 99):6.2f} ms  "
        f"{len(samples) / elapsed:7.0f} lookups/s"
    )


async def run(
    url: str, cluster: bool, scopes: list[str], per_scope: int, requests: int, ks: list[int]
) -> None:
    store = RedisStore(url, cluster=cluster)
    await store.open(DIM)
    await fill(store, scopes, per_scope, seed=1)
    await measure(store, scopes, 100, 1, 1)  # warm connections
    name = "3-primary cluster" if cluster else "one server      "
    for k in ks:
        for concurrency in (1, 16):
            found = await measure(store, scopes, requests, concurrency, k)
            print(f"{name}  k={k:<2} {found}", flush=True)
    await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scopes", type=int, default=50)
    parser.add_argument("--per-scope", type=int, default=200)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--k", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    scopes = [uuid.uuid4().hex for _ in range(args.scopes)]
    single = str(free_port())
    shards = [str(p) for p in free_cluster_ports(3)]
    subprocess.run(["bash", SCRIPT, "start", single], check=True, capture_output=True)
    subprocess.run(["bash", SCRIPT, "cluster-start", *shards], check=True, capture_output=True)
    try:
        print(f"{args.scopes} scopes x {args.per_scope} entries, {DIM}-d, {args.requests} lookups")
        asyncio.run(
            run(f"redis://127.0.0.1:{single}", False, scopes, args.per_scope, args.requests, args.k)
        )
        asyncio.run(
            run(
                f"redis://127.0.0.1:{shards[0]}",
                True,
                scopes,
                args.per_scope,
                args.requests,
                args.k,
            )
        )
    finally:
        subprocess.run(["bash", SCRIPT, "stop", single], check=False, capture_output=True)
        subprocess.run(["bash", SCRIPT, "cluster-stop", *shards], check=False, capture_output=True)


if __name__ == "__main__":
    main()
