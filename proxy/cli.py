"""The ``vetcache`` command.

    vetcache demo [--threshold T] [--target-fp F]
    vetcache serve [--config F] [--host H] [--port P] [--workers N]
    vetcache check-config F
    vetcache prepare-embedder [--config F]   (loads the embedder; exports it to ONNX if needed)
    vetcache fake-upstream [--host H] [--port P] [--latency-ms L] [--embeddings hash|model]
                           [--embedding-backend torch|onnx-fp32|onnx-int8] [--onnx-dir D]
    vetcache audit-worker [--config F] [--name N] [--metrics-port P]
    vetcache eval --pairs F [--model M] [--backend B] [--min-margin 0.18] [--format text|json]
    vetcache tune [--config F] [--namespace N] --target-fp T [--pairs F] [--apply] [--plot F]
    vetcache hash-key            (reads a key on stdin, prints its SHA-256)
    vetcache version

Errors are one line on stderr (one per bad field for configs) and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from cache.settings import EMBEDDING_BACKENDS
from proxy import __version__
from proxy.errors import ConfigError
from proxy.settings import Settings, load_settings, worker_environment

if TYPE_CHECKING:
    from cache.embedder import Embedder
    from proxy.logs import LogFormat
    from proxy.metrics import Metrics


def _configure_logging(level: str, log_format: LogFormat = "text") -> None:
    from proxy.logs import configure

    configure(level, log_format)


def _load(config: Path | None, **overrides: object) -> Settings:
    try:
        return load_settings(config_file=config, **overrides)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(f"vetcache: config error: {line}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _load(args.config, host=args.host, port=args.port, workers=args.workers)
    _configure_logging(settings.log_level, settings.log_format)
    common = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "access_log": False,  # the gateway writes its own access line, with the request id
        "timeout_graceful_shutdown": int(settings.shutdown_timeout),
        "log_config": None,
    }
    if settings.workers == 1:
        from proxy.app import create_app

        uvicorn.run(create_app(settings), **common)  # type: ignore[arg-type]
    else:
        # Worker processes rebuild the settings from the environment; hand them the same
        # config file and flags through it, and a fresh directory where prometheus-client
        # keeps every worker's samples (so /metrics on any of them shows them all).
        with worker_environment(settings), _multiprocess_metrics():
            uvicorn.run(
                "proxy.app:app_from_environment",
                factory=True,
                workers=settings.workers,
                **common,  # type: ignore[arg-type]
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


def cmd_audit_worker(args: argparse.Namespace) -> int:
    import asyncio
    import signal
    import socket

    settings = _load(args.config)
    _configure_logging(settings.log_level, settings.log_format)
    if not settings.redis_url:
        print(
            "vetcache: audit-worker needs redis_url (VETCACHE_REDIS_URL); without Redis the "
            "gateway judges its own hits in-process",
            file=sys.stderr,
        )
        return 2
    from audit.errors import QueueUnusable
    from proxy.tracing import install

    install(settings.tracing)  # judge spans, linked to their requests' traces
    name = args.name or f"{socket.gethostname()}-{os.getpid()}"
    metrics = _worker_metrics(settings, args.metrics_port)
    try:
        asyncio.run(_run_audit_worker(settings, name, signal, metrics))
    except QueueUnusable as exc:  # misconfigured: waiting would not help
        print(f"vetcache: audit-worker cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


def _worker_metrics(settings: Settings, port: int) -> Metrics:
    """The audit worker's metrics, served on their own port (0: not served). Workers are
    scraped like gateways; they do not push."""
    from prometheus_client import CollectorRegistry, start_http_server

    from proxy.metrics import Metrics

    metrics = Metrics(CollectorRegistry(), settings.metrics.max_namespaces)
    if port:
        start_http_server(port, addr=settings.host, registry=metrics.registry)
        logging.getLogger("vetcache.audit").info(
            "audit worker metrics on http://%s:%d/metrics", settings.host, port
        )
    return metrics


async def _run_audit_worker(
    settings: Settings, name: str, signal: ModuleType, metrics: Metrics
) -> None:
    import asyncio

    from audit import (
        AuditWorker,
        QueueError,
        QueueUnusable,
        build_judge,
        build_queue_and_ledger,
    )
    from cache.stores.redis import RedisStore

    assert settings.redis_url is not None
    queue, ledger = build_queue_and_ledger(
        settings.audit, settings.redis_url, redis_cluster=settings.redis_cluster
    )
    store = RedisStore(settings.redis_url, cluster=settings.redis_cluster)
    judge = build_judge(settings.audit)
    worker = AuditWorker(name, queue, judge, ledger, store, settings.audit, metrics)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log = logging.getLogger("vetcache.audit")
    try:
        await queue.open()
    except QueueUnusable:
        raise
    except QueueError as exc:  # Redis not up yet: the run loop retries and creates the group
        log.warning("audit queue unreachable at start, retrying: %s", type(exc).__name__)
    log.info("audit worker %s started", name)
    try:
        await worker.run(stop)
    finally:
        await judge.aclose()
        await queue.close()
        await ledger.close()
        await store.close()


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = _load(args.file)
    auth = f"auth on, {len(settings.auth.api_keys)} key(s)" if settings.auth.enabled else "auth off"
    print(f"ok: {len(settings.aliases)} model alias(es) ({', '.join(settings.aliases)}); {auth}")
    return 0


def cmd_prepare_embedder(args: argparse.Namespace) -> int:
    """Load the configured embedder once: an ONNX backend exports the model on first use, so
    an image build or an install step can pay that (~15 s) instead of the first start, and a
    read-only container finds the export in place."""
    import asyncio
    import time

    from cache import build_embedder
    from cache.errors import EmbedderError

    settings = _load(args.config, auth={"enabled": False})  # only `cache:` matters here
    _configure_logging("warning")
    embedder = build_embedder(settings.cache)
    started = time.perf_counter()
    try:
        asyncio.run(_open_and_close(embedder))
    except (EmbedderError, OSError) as exc:
        print(f"vetcache: cannot prepare the embedder: {exc}", file=sys.stderr)
        return 2
    where = getattr(embedder, "directory", None)
    print(
        f"ok: {settings.cache.embedding_backend} embedder {embedder.fingerprint} ready in "
        f"{time.perf_counter() - started:.1f} s" + (f" (exports in {where})" if where else "")
    )
    return 0


async def _open_and_close(embedder: Embedder) -> None:
    await embedder.open()
    await embedder.close()


def cmd_fake_upstream(args: argparse.Namespace) -> int:
    import uvicorn

    from proxy.fake_upstream import create_fake_upstream, model_embedder

    _configure_logging("warning")
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


def cmd_demo(args: argparse.Namespace) -> int:
    from proxy import demo

    _configure_logging("warning")
    return demo.main(args)


def cmd_tune(args: argparse.Namespace) -> int:
    from proxy import tune_cmd

    return tune_cmd.run(_load(args.config), args)


def cmd_hash_key(_args: argparse.Namespace) -> int:
    from proxy.auth import hash_key

    key = sys.stdin.readline().strip()
    if not key:
        print("vetcache: hash-key: no key on stdin", file=sys.stderr)
        return 2
    print(hash_key(key))
    return 0


def cmd_version(_args: argparse.Namespace) -> int:
    print(f"vetcache {__version__}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vetcache", description="OpenAI-compatible LLM gateway with a vetted semantic cache"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", type=Path, help="YAML config file")
    serve.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8000)")
    serve.add_argument("--workers", type=int, help="worker processes (default 1)")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("audit-worker", help="judge sampled hits from the Redis stream")
    worker.add_argument("--config", type=Path, help="YAML config file")
    worker.add_argument("--name", help="consumer name (default host-pid)")
    worker.add_argument(
        "--metrics-port",
        type=int,
        default=9102,
        help="serve this worker's Prometheus metrics on this port (0: off; default 9102)",
    )
    worker.set_defaults(func=cmd_audit_worker)

    check = sub.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("file", type=Path)
    check.set_defaults(func=cmd_check_config)

    prepare = sub.add_parser(
        "prepare-embedder", help="load the configured embedder (exporting it to ONNX if needed)"
    )
    prepare.add_argument("--config", type=Path, help="YAML config file")
    prepare.set_defaults(func=cmd_prepare_embedder)

    fake = sub.add_parser("fake-upstream", help="run the OpenAI-compatible simulator")
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=8001)
    fake.add_argument("--latency-ms", type=float, default=0.0, help="delay before each answer")
    fake.add_argument(
        "--embeddings",
        choices=["hash", "model"],
        default="hash",
        help="/v1/embeddings: hash-seeded vectors (default) or the bundled model's, "
        "without the simulated latency",
    )
    fake.add_argument(
        "--embedding-backend",
        choices=EMBEDDING_BACKENDS,
        help="how --embeddings model runs the model (as cache.embedding_backend, its default)",
    )
    fake.add_argument(
        "--onnx-dir", type=Path, help="where the ONNX export is kept (as cache.onnx_dir)"
    )
    fake.set_defaults(func=cmd_fake_upstream)

    from audit import evaluate
    from proxy import demo, tune_cmd

    show = sub.add_parser(
        "demo", help="run gateway, fake upstream and judge locally on a workload; report"
    )
    demo.add_arguments(show)
    show.set_defaults(func=cmd_demo)

    evaluation = sub.add_parser(
        "eval", help="how well the embedder separates same-answer pairs from traps, per cohort"
    )
    evaluate.add_arguments(evaluation)
    evaluation.set_defaults(func=evaluate.main)

    tune = sub.add_parser("tune", help="threshold -> hit rate and FP rate; recommend, apply")
    tune_cmd.add_arguments(tune)
    tune.set_defaults(func=cmd_tune)

    hashk = sub.add_parser("hash-key", help="print the SHA-256 of a key read on stdin")
    hashk.set_defaults(func=cmd_hash_key)

    ver = sub.add_parser("version", help="print the version")
    ver.set_defaults(func=cmd_version)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    status: int = args.func(args)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
