"""``vetcache fake-upstream``: the OpenAI-compatible simulator the demo and tests call."""

from __future__ import annotations

import argparse
from pathlib import Path

from cache.settings import EMBEDDING_BACKENDS
from proxy.commands.common import configure_logging

NAME = "fake-upstream"
HELP = "run the OpenAI-compatible simulator"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--port", type=int, default=8001, help="port")
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="delay before each answer, in ms"
    )
    parser.add_argument(
        "--embeddings",
        choices=["hash", "model"],
        default="hash",
        help="/v1/embeddings: hash-seeded vectors, or the bundled model's (without the "
        "simulated latency)",
    )
    parser.add_argument(
        "--embedding-backend",
        choices=EMBEDDING_BACKENDS,
        help="how --embeddings model runs the model (default: cache.embedding_backend's)",
    )
    parser.add_argument(
        "--onnx-dir",
        type=Path,
        help="where the ONNX export is kept (default: cache.onnx_dir's)",
    )


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from proxy.fake_upstream import create_fake_upstream, model_embedder

    configure_logging("warning")
    embedder = None
    if args.embeddings == "model":
        embedder = model_embedder(args.embedding_backend, args.onnx_dir)
    uvicorn.run(
        create_fake_upstream(latency_ms=args.latency_ms, embedder=embedder),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        log_config=None,
    )
    return 0
