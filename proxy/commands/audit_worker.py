"""``vetcache audit-worker``: judge sampled hits from the shared Redis stream."""

from __future__ import annotations

import argparse
import logging
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from proxy.commands.common import CONFIG_HELP, configure_logging, fail, load

if TYPE_CHECKING:
    from proxy.metrics import Metrics
    from proxy.settings import Settings

NAME = "audit-worker"
HELP = "judge sampled hits from the Redis stream"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help=CONFIG_HELP)
    parser.add_argument("--name", help="consumer name in the stream's group (default: host-pid)")
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=9102,
        help="serve this worker's Prometheus metrics on this port (0: off)",
    )


def run(args: argparse.Namespace) -> int:
    import asyncio

    from audit.errors import QueueUnusable
    from proxy.tracing import install

    settings = load(args.config)
    configure_logging(settings.log_level, settings.log_format)
    if not settings.redis_url:
        return fail(
            NAME,
            "needs redis_url (VETCACHE_REDIS_URL); without Redis the gateway judges its own "
            "hits in-process",
        )
    install(settings.tracing)  # judge spans, linked to their requests' traces
    name = args.name or f"{socket.gethostname()}-{os.getpid()}"
    metrics = _metrics(settings, args.metrics_port)
    try:
        asyncio.run(_work(settings, name, metrics))
    except QueueUnusable as exc:  # misconfigured: waiting would not help
        return fail(NAME, f"cannot start: {exc}", status=1)
    return 0


async def _work(settings: Settings, name: str, metrics: Metrics) -> None:
    """Judge until SIGTERM or SIGINT."""
    import asyncio
    import signal

    from audit import serve_worker

    assert settings.redis_url is not None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await serve_worker(
        settings.audit,
        settings.redis_url,
        name=name,
        stop=stop,
        observer=metrics,
        cluster=settings.redis_cluster,
    )


def _metrics(settings: Settings, port: int) -> Metrics:
    """The worker's metrics, served on their own port (0: not served). Workers are scraped
    like gateways; they do not push."""
    from prometheus_client import CollectorRegistry, start_http_server

    from proxy.metrics import Metrics

    metrics = Metrics(
        CollectorRegistry(), settings.metrics.max_namespaces, tenants=len(settings.auth.tenants)
    )
    if port:
        start_http_server(port, addr=settings.host, registry=metrics.registry)
        logging.getLogger("vetcache.audit").info(
            "audit worker metrics on http://%s:%d/metrics", settings.host, port
        )
    return metrics
