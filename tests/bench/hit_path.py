"""Hit-path latency: a cache hit through the gateway against the bare embed + KNN floor.

Starts Redis Stack (``scripts/redis-stack.sh``), fills one scope with N entries (random unit
vectors plus real admitted questions), starts ``vetcache serve`` on that Redis and the fake
upstream, then measures, for N in ``--entries`` (default 1000 and 100000):

- the floor: one embedding (bundled model, one thread) and one filtered KNN, p50/p99;
- semantic hits (a lower-cased, unpunctuated variant of an admitted question: embed + KNN)
  and exact-repeat hits (no embedding) through HTTP at ``--concurrency`` (default 1, 8 and
  32), p50/p99, hits/s;
- the split of a semantic hit's p50 into embed / vector search / rest (HTTP, auth, JSON), and
  for every cell where the time goes (``tests/bench/where_time_goes.py``): the gateway's CPU
  per request by thread (the event loop, the embedding thread) with the time each waited for
  a core, and the hits' stage timings from the access log.

With ``--verifier DIR`` (a verifier folder; ``tests/bench/verifier_cost.py`` builds
untrained ones of a given size), the gateway is measured twice: without a verifier, then with
it verifying every semantic hit (``min_score: 0`` and a 2 s timeout, so the same hits are
served and only its cost differs; exact repeats are never verified).

Numbers only; nothing is asserted.

    .venv/bin/python tests/bench/hit_path.py [--entries 1000 100000] [--requests 400]
        [--backend torch|onnx-fp32|onnx-int8] [--verifier DIR] [--concurrency 1 8 32]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cache import CacheSettings, build_embedder
from cache.embedder import SentenceTransformerEmbedder
from cache.keys import derive_key
from cache.schema import CacheEntry
from cache.settings import EMBEDDING_BACKENDS
from cache.stores.redis import RedisStore
from tests.bench.where_time_goes import Split
from tests.conftest import LOGS, ROOT, free_port, stop, vetcache, wait_http

QUESTIONS = [
    "How do I reverse a list in Python?",
    "What is the capital of Australia?",
    "Explain the difference between TCP and UDP.",
    "How long should I boil an egg for a soft yolk?",
    "What does HTTP status code 429 mean?",
    "How can I undo the last git commit?",
    "What is the boiling point of water at sea level?",
    "Recommend a good book about the history of Rome.",
    "How do I convert Celsius to Fahrenheit?",
    "Why is the sky blue?",
]
NAMESPACE = "bench"
PAIRS = ROOT.parent / "shared" / "data" / "fow_cache" / "pairs.tsv"


def variant(text: str) -> str:
    return text.lower().rstrip("?.")


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def filler_bases(embedder: SentenceTransformerEmbedder) -> np.ndarray:
    """Real sentence vectors to scatter filler around: the fow_cache prompts when the shared
    data is there. Pure random vectors would be a space without neighbourhoods, where HNSW
    has nothing to navigate by and misses that real traffic would not see."""
    texts = list(QUESTIONS)
    if PAIRS.exists():
        with PAIRS.open() as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                texts += [row["text_a"], row["text_b"]]
    return embedder._encode(texts)  # one batch, before the gateway starts


async def fill(store: RedisStore, scope: str, count: int, bases: np.ndarray) -> None:
    """``count`` entries near (similarity ~0.5-0.85) to random base sentences."""
    rng = np.random.default_rng(7)
    now = time.time()
    dimension = bases.shape[1]

    async def put(i: int) -> None:
        sigma = rng.uniform(0.03, 0.08)
        vector = bases[rng.integers(len(bases))] + rng.normal(0, sigma, dimension)
        vector = vector.astype(np.float32)
        entry = CacheEntry(
            id=uuid.uuid4().hex, scope=scope, exact=uuid.uuid4().hex, namespace=f"{NAMESPACE}-fill",
            tenant="default", model="fake-gpt", text=f"filler {i}", response="{}", embedder="e",
            created_at=now,
        )  # fmt: skip
        await store.put(entry, vector / np.linalg.norm(vector), ttl_s=86400, cap=None)

    for start in range(0, count, 500):
        await asyncio.gather(*(put(i) for i in range(start, min(count, start + 500))))


async def floor(
    store: RedisStore, embedder: SentenceTransformerEmbedder, scope: str
) -> dict[str, list[float]]:
    embeds, searches = [], []
    for _ in range(3):
        for text in QUESTIONS:
            started = time.perf_counter()
            vector = await embedder.embed(variant(text))
            embeds.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await store.search(scope, vector, k=1)
            searches.append((time.perf_counter() - started) * 1000)
    return {"embed": embeds[len(QUESTIONS) :], "search": searches[len(QUESTIONS) :]}


async def hits(
    url: str, texts: list[str], requests: int, concurrency: int, store: bool = False
) -> tuple[list[float], float, set[str]]:
    """Latencies of ``requests`` asked by ``concurrency`` workers; with ``store`` False they
    carry ``Cache-Control: no-store``, so a miss shows as one instead of being admitted.

    The client is aiohttp, not httpx: httpx's own time per request (~1.5 ms here at c=1, and
    a ~200 requests/s ceiling at c=32) would be counted as the gateway's."""
    headers = {"x-vetcache-namespace": NAMESPACE}
    if not store:
        headers["cache-control"] = "no-store"
    latencies: list[float] = []
    outcomes: set[str] = set()
    remaining = requests
    # Idle connections dropped before uvicorn's 5 s keep-alive closes them under the client.
    connector = aiohttp.TCPConnector(limit=64, keepalive_timeout=2)
    async with aiohttp.ClientSession(
        url, connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    ) as client:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                body = {
                    "model": "fake-gpt",
                    "messages": [{"role": "user", "content": texts[remaining % len(texts)]}],
                }
                started = time.perf_counter()
                async with client.post("/v1/chat/completions", json=body, headers=headers) as reply:
                    await reply.read()
                latencies.append((time.perf_counter() - started) * 1000)
                outcomes.add(reply.headers.get("x-vetcache", "?"))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        rate = requests / (time.perf_counter() - started)
    return latencies, rate, outcomes


def make_embedder(backend: str, onnx_dir: str) -> SentenceTransformerEmbedder:
    """The floor's embedder: the one the gateway builds (same backend and ONNX export)."""
    return build_embedder(CacheSettings(embedding_backend=backend, onnx_dir=onnx_dir))


async def run(redis_url: str, entries: int, args: argparse.Namespace, onnx_dir: str) -> None:
    backend, verifier = args.backend, args.verifier
    embedder = make_embedder(backend, onnx_dir)
    await embedder.open()
    store = RedisStore(redis_url)
    await store.open(embedder.dimension)
    body = {"model": "fake-gpt", "messages": [{"role": "user", "content": QUESTIONS[0]}]}
    scope = derive_key(
        body, tenant="default", namespace=NAMESPACE, embedder=embedder.fingerprint
    ).scope
    started = time.perf_counter()
    await fill(store, scope, entries, filler_bases(embedder))
    filled = time.perf_counter() - started
    print(f"\n== {backend}: {entries} entries in one scope (filled in {filled:.0f} s)")
    bare = await floor(store, embedder, scope)
    upstream_port = free_port()
    fake = vetcache("fake-upstream", "--port", str(upstream_port))
    try:
        wait_http(f"http://127.0.0.1:{upstream_port}/v1/models", fake)
        for model in (None, verifier) if verifier else (None,):
            # min_score 0 and a long timeout: every semantic hit is verified and still served,
            # so only the verifier's cost differs (a timeout would turn hits into misses).
            verify = f"{{model: '{model}', min_score: 0.0, timeout_ms: 2000}}"
            extra = f", verifier: {verify}" if model else ""
            cache = (
                f"{{lookup_budget_ms: 5000, threshold: 0.85, embedding_backend: {backend}, "
                f"onnx_dir: '{onnx_dir}'{extra}}}"
            )
            print(f"-- verifier: {model or 'none'}")
            await through_gateway(redis_url, upstream_port, cache, args, bare)
    finally:
        stop(fake)
        await store.close()
        await embedder.close()


async def through_gateway(
    redis_url: str,
    upstream_port: int,
    cache: str,
    args: argparse.Namespace,
    bare: dict[str, list[float]],
) -> None:
    """Start ``vetcache serve`` with the ``cache:`` block given and print its hit latencies."""
    gateway_port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.yaml"
        config.write_text(
            f"auth: {{enabled: false}}\naccess_log: true\nlog_level: info\nredis_url: '{redis_url}'\n"
            f"cache: {cache}\nmodel_list:\n"
            f"  - {{model_name: fake-gpt, model: openai/fake-gpt, api_base: 'http://127.0.0.1:{upstream_port}/v1'}}\n"
        )
        gateway = vetcache("serve", "--config", str(config), "--port", str(gateway_port))
        try:
            wait_http(f"http://127.0.0.1:{gateway_port}/readyz", gateway, timeout=180)
            url = f"http://127.0.0.1:{gateway_port}"
            await hits(url, QUESTIONS, len(QUESTIONS), 1, store=True)  # admit the questions
            await asyncio.sleep(1.0)
            await measure(url, args, bare, Split(gateway.pid, LOGS[gateway.pid]))
        finally:
            stop(gateway)


async def measure(
    url: str, args: argparse.Namespace, bare: dict[str, list[float]], split: Split
) -> None:
    requests = args.requests
    embed50, search50 = pct(bare["embed"], 0.5), pct(bare["search"], 0.5)
    print(f"floor: embed p50 {embed50:.2f} p99 {pct(bare['embed'], 0.99):.2f} ms; "
          f"KNN p50 {search50:.2f} p99 {pct(bare['search'], 0.99):.2f} ms; "
          f"embed+KNN p50 {embed50 + search50:.2f} ms")  # fmt: skip
    print(f"{'kind':>8} {'conc':>4} {'p50 ms':>8} {'p99 ms':>8} {'hits/s':>8}  outcomes")
    for kind, texts in (
        ("semantic", [variant(q) for q in QUESTIONS]),
        ("exact", QUESTIONS),
    ):
        for concurrency in args.concurrency:
            await hits(url, texts, 50, concurrency)  # warm-up
            with split:
                latencies, rate, outcomes = await hits(url, texts, requests, concurrency)
            print(f"{kind:>8} {concurrency:>4} {pct(latencies, 0.5):>8.2f} "
                  f"{pct(latencies, 0.99):>8.2f} {rate:>8.0f}  {','.join(sorted(outcomes))}")  # fmt: skip
            print("\n".join(split.lines(requests)))
            if kind == "semantic" and concurrency == 1:
                p50 = pct(latencies, 0.5)
                print(f"         split of the c=1 p50: embed {embed50:.2f} + KNN {search50:.2f} "
                      f"+ rest {p50 - embed50 - search50:.2f} ms; "
                      f"{p50 / (embed50 + search50):.2f}x the floor")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, nargs="+", default=[1000, 100000])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument(
        "--backend", choices=EMBEDDING_BACKENDS, default=CacheSettings().embedding_backend
    )
    parser.add_argument("--verifier", help="a verifier folder: measure with it too")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()
    onnx_dir = tempfile.mkdtemp(prefix="vetcache-onnx-")  # exported once, shared with serve
    script = str(ROOT / "scripts" / "redis-stack.sh")
    for entries in args.entries:
        port = str(free_port())
        subprocess.run(["bash", script, "start", port], check=True, capture_output=True)
        try:
            url = f"redis://127.0.0.1:{port}/0"
            asyncio.run(run(url, entries, args, onnx_dir))
        finally:
            subprocess.run(["bash", script, "stop", port], check=False, capture_output=True)


if __name__ == "__main__":
    main()
