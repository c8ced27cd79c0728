"""``vetcache demo``: the whole product on one machine, no services (``proxy.demo``)."""

from __future__ import annotations

import argparse

from proxy.commands.common import configure_logging, fail

NAME = "demo"
HELP = "run gateway, fake upstream and judge locally on a workload; report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threshold", type=float, default=0.85, help="similarity threshold")
    parser.add_argument("--target-fp", type=float, default=0.05, help="FP target for tune")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument("--seed", type=int, default=7, help="order of the replay")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import asyncio

    from proxy.demo import run_demo

    if not 0 < args.threshold <= 1 or not 0 < args.target_fp < 1 or args.concurrency < 1:
        return fail(
            NAME,
            "--threshold must be in (0, 1], --target-fp in (0, 1), --concurrency at least 1",
        )
    configure_logging("warning")
    return asyncio.run(run_demo(args))
