"""Embedder settings by measurement: threads, batch window and max batch, per backend, under
concurrent callers, through the embedder's own async queue (the code the gateway runs).

For every backend (torch, onnx-fp32, onnx-int8), thread count (1, 2) and batch window, a
closed loop of C callers (C = 1, 8, 32) each awaits ``embed()`` on distinct texts; prints
per-call p50/p99 and embeddings/s. Numbers only; nothing is asserted. The gateway's event
loop shares the same 2 cores in production, so thread counts that win here are confirmed
through the gateway with ``tests/bench/hit_path.py``.

    .venv/bin/python tests/bench/embed_tuning.py [--calls 240] [--backends torch onnx-int8]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cache import CacheSettings, build_embedder
from cache.embedder import SentenceTransformerEmbedder
from cache.settings import EMBEDDING_BACKENDS
from tests.integration.test_onnx_embedder import sample

BACKENDS = EMBEDDING_BACKENDS
WINDOWS_MS = (0.0, 1.0, 2.0, 5.0)
CONCURRENCY = (1, 8, 32)


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def build(backend: str, threads: int, directory: Path) -> SentenceTransformerEmbedder:
    settings = CacheSettings(
        embedding_backend=backend, embedding_threads=threads, onnx_dir=str(directory)
    )
    return build_embedder(settings)


async def closed_loop(
    embedder: SentenceTransformerEmbedder, texts: list[str], calls: int, concurrency: int
) -> tuple[list[float], float]:
    latencies: list[float] = []
    left = calls

    async def caller() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            text = texts[left % len(texts)]
            started = time.perf_counter()
            await embedder.embed(text)
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return latencies, calls / (time.perf_counter() - started)


async def run(backend: str, threads: int, calls: int, directory: Path) -> None:
    embedder = build(backend, threads, directory)
    await embedder.open()
    texts = sample()
    # int8 embeds each text alone (see OnnxEmbedder._encode): a window only adds waiting.
    windows = (0.0,) if backend == "onnx-int8" else WINDOWS_MS
    try:
        await closed_loop(embedder, texts, 40, 4)  # warm-up
        for window in windows:
            embedder.batch_window = window / 1000.0
            for concurrency in CONCURRENCY:
                latencies, rate = await closed_loop(embedder, texts, calls, concurrency)
                print(f"{backend:>9} {threads:>7} {window:>9.0f} {concurrency:>4} "
                      f"{pct(latencies, 0.5):>8.2f} {pct(latencies, 0.99):>8.2f} {rate:>8.0f}",
                      flush=True)  # fmt: skip
    finally:
        await embedder.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=240)
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="vetcache-onnx-"))
    print(f"{'backend':>9} {'threads':>7} {'window ms':>9} {'conc':>4} "
          f"{'p50 ms':>8} {'p99 ms':>8} {'embeds/s':>8}")  # fmt: skip
    for backend in args.backends:
        for threads in args.threads:
            asyncio.run(run(backend, threads, args.calls, directory))


if __name__ == "__main__":
    main()
