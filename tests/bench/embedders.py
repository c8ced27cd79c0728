"""Embedding backends on the bundled model, one thread: torch (sentence-transformers), ONNX
Runtime fp32 and int8. Per-query latency (p50/p99 of single-text calls) and the cost of a
micro-batch of 8 (int8 runs its texts one by one: see ``OnnxEmbedder._encode``). Numbers
only; nothing is asserted.

    .venv/bin/python tests/bench/embedders.py [--queries 300]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cache.embedder import SentenceTransformerEmbedder
from cache.onnx_embedder import OnnxEmbedder
from tests.integration.test_onnx_embedder import sample


def timed(call: object, batches: list[list[str]]) -> list[float]:
    samples = []
    for batch in batches:
        started = time.perf_counter()
        call(batch)  # type: ignore[operator]
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    texts = (sample() * 2)[: args.queries]
    directory = Path(tempfile.mkdtemp(prefix="vetcache-onnx-"))
    backends: list[tuple[str, SentenceTransformerEmbedder]] = [
        ("torch", SentenceTransformerEmbedder()),
        ("onnx-fp32", OnnxEmbedder(precision="fp32", directory=directory)),
        ("onnx-int8", OnnxEmbedder(precision="int8", directory=directory)),
    ]
    print(f"{'backend':<10} {'load s':>7} {'p50 ms':>7} {'p99 ms':>7} {'batch of 8 ms':>14}")
    for name, embedder in backends:
        started = time.perf_counter()
        embedder._load()
        load = time.perf_counter() - started
        timed(embedder._encode, [[t] for t in texts[:20]])  # warm up
        single = timed(embedder._encode, [[t] for t in texts])
        eights = timed(embedder._encode, [texts[i : i + 8] for i in range(0, len(texts) - 7, 8)])
        print(
            f"{name:<10} {load:7.2f} {np.percentile(single, 50):7.2f} "
            f"{np.percentile(single, 99):7.2f} {np.percentile(eights, 50):14.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
