"""``vetcache serve``: the gateway."""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from proxy.commands.common import CONFIG_HELP, configure_logging, load
from proxy.server import uvicorn_options
from proxy.settings import worker_environment

NAME = "serve"
HELP = "run the gateway"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help=CONFIG_HELP)
    parser.add_argument("--host", help="interface to bind (default: the config's, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: the config's, 8000)")
    parser.add_argument("--workers", type=int, help="worker processes (default: the config's, 1)")


def run(args: argparse.Namespace) -> int:
    import uvicorn

    settings = load(args.config, host=args.host, port=args.port, workers=args.workers)
    configure_logging(settings.log_level, settings.log_format)
    common = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "timeout_graceful_shutdown": int(settings.shutdown_timeout),
        **uvicorn_options(settings),
    }
    if settings.workers == 1:
        from proxy.app import create_app

        uvicorn.run(create_app(settings), **common)
        return 0
    # Worker processes rebuild the settings from the environment; hand them the same config
    # file and flags through it, and a fresh directory where prometheus-client keeps every
    # worker's samples (so /metrics on any of them shows them all).
    with worker_environment(settings), _multiprocess_metrics():
        uvicorn.run(
            "proxy.app:app_from_environment",
            factory=True,
            workers=settings.workers,
            **common,
        )
    return 0


@contextmanager
def _multiprocess_metrics() -> Iterator[None]:
    """``PROMETHEUS_MULTIPROC_DIR`` for the worker processes: a new empty directory (stale
    files from an earlier run would be summed in), removed afterwards. A directory the user
    set is used as it is."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="vetcache-metrics-") as directory:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        try:
            yield
        finally:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
