"""Race: vetcache against the LiteLLM proxy's redis-semantic cache, side by side, same run.

Starts Redis Stack (``scripts/redis-stack.sh``), the fake upstream with a fixed latency that
also serves the bundled model's real vectors on ``/v1/embeddings`` (``--embeddings model``,
the backend vetcache runs), ``vetcache serve`` and the LiteLLM proxy (``litellm[proxy]`` at
the version in .venv, from a venv of its own made once under ``.cache/bench``: its
dependencies must not move the project's pins). Both caches live in the same Redis at the
same threshold, each in its own index. Then, on both, alternating so both see the same
machine:

- misses: N distinct questions (fow_cache same-answer pairs' ``text_a``), each also sent
  straight to the upstream; miss overhead = gateway latency minus direct latency, p50/p99;
- hits at concurrency 1, 8 and 32: a lower-cased, unpunctuated variant of each question
  (semantic) and the question itself (exact), p50/p99 of the hits, hits/s, hit ratio (from
  ``x-vetcache: hit`` and LiteLLM's ``x-litellm-cache-key``, set on cache hits only);
- the fow_cache paraphrases (``text_b``) once each: hit ratio, and where the two disagree.

Prints metric / vetcache / LiteLLM / ratio (with the miss row: each gateway's added p50/p99
over the direct upstream) and whether the acceptance conditions of issues 9 and 21 hold; ``--json`` writes the raw numbers. Numbers only; nothing is asserted. The processes
are in ``race_proxy``, the workload and driver in ``race_traffic``, the report in
``race_report``.

    .venv/bin/python tests/bench/race.py [--questions 200] [--requests 500] [--latency-ms 50]
        [--threshold 0.85] [--backend onnx-int8] [--lookup-budget-ms MS] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import signal
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cache.settings import EMBEDDING_BACKENDS
from tests.bench.race_proxy import (
    litellm_config,
    litellm_proxy,
    redis_stack,
    running,
    start_litellm,
    vetcache_config,
)
from tests.bench.race_report import summary
from tests.bench.race_traffic import race
from tests.conftest import ROOT, free_port, vetcache


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--requests", type=int, default=500, help="per hit cell")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="the fake upstream's")
    parser.add_argument("--threshold", type=float, default=0.85, help="cosine, both gateways")
    parser.add_argument("--backend", choices=EMBEDDING_BACKENDS, default="onnx-int8")
    parser.add_argument(
        "--lookup-budget-ms",
        type=float,
        help="vetcache's cache.lookup_budget_ms (default: its own)",
    )
    parser.add_argument("--onnx-dir", type=Path, default=ROOT / ".cache" / "bench" / "onnx")
    parser.add_argument("--json", type=Path, help="write the raw numbers here")
    return parser.parse_args()


def run(args: argparse.Namespace, command: Path) -> dict[str, Any]:
    """Start Redis, the fake upstream and both gateways, race them, stop everything."""
    key = "sk-race-" + secrets.token_hex(16)
    ports = {name: free_port() for name in ("upstream", "vetcache", "litellm")}
    urls = {name: f"http://127.0.0.1:{port}/v1" for name, port in ports.items()}
    with ExitStack() as stack:
        redis_url = stack.enter_context(redis_stack())
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="race-")))
        fake = vetcache(
            "fake-upstream", "--port", str(ports["upstream"]), "--latency-ms", str(args.latency_ms),
            "--embeddings", "model", "--embedding-backend", args.backend, "--onnx-dir", str(args.onnx_dir),
        )  # fmt: skip
        stack.enter_context(running(fake, f"{urls['upstream']}/models"))
        (folder / "vetcache.yaml").write_text(
            vetcache_config(redis_url, urls["upstream"], key, args)
        )
        (folder / "litellm.yaml").write_text(
            litellm_config(redis_url, urls["upstream"], key, args.threshold)
        )
        gateway = vetcache(
            "serve", "--config", str(folder / "vetcache.yaml"), "--port", str(ports["vetcache"])
        )
        stack.enter_context(running(gateway, f"http://127.0.0.1:{ports['vetcache']}/readyz"))
        proxy = start_litellm(command, folder / "litellm.yaml", ports["litellm"])
        stack.enter_context(
            running(proxy, f"http://127.0.0.1:{ports['litellm']}/health/liveliness")
        )
        return asyncio.run(race(urls, key, args))


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: stop what was started
    results = run(args, litellm_proxy())
    print("\n".join(summary(results, args)))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
