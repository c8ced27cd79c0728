"""``vetcache demo``: the whole product on one machine, no services (``proxy.demo``);
``--learn``: the learning loop, end to end (``proxy.demo_learn``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from proxy.commands.common import configure_logging, fail

NAME = "demo"
HELP = "run gateway, fake upstream and judge locally on a workload; report"
THRESHOLD = 0.85
"""The demo's threshold."""
LEARN_THRESHOLD = 0.80
"""``--learn``'s: a useful floor, under which the verifier has candidates to decide."""
LEARN_EPOCHS = 2.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threshold", type=float,
        help=f"similarity threshold ({THRESHOLD}; with --learn {LEARN_THRESHOLD})",
    )  # fmt: skip
    parser.add_argument("--target-fp", type=float, default=0.05, help="FP target for tune")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument("--seed", type=int, default=7, help="order of the replay")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    learn = parser.add_argument_group("the learning loop")
    learn.add_argument(
        "--learn", action="store_true",
        help="pass 1, review, train a verifier from the ledger, gate it, pass 2 on new prompts",
    )  # fmt: skip
    learn.add_argument(
        "--learn-base", type=Path, metavar="DIR",
        help="verifier (or model) to continue training from (default: the default verifier, "
        "which `vetcache train --default` builds)",
    )  # fmt: skip
    learn.add_argument(
        "--learn-epochs", type=float, default=LEARN_EPOCHS, help="epochs of the short training"
    )
    learn.add_argument(
        "--learn-out", type=Path, metavar="DIR",
        help="keep the trained verifier in DIR (must not exist; default: a temporary folder)",
    )  # fmt: skip


def _learn_problem(args: argparse.Namespace) -> str | None:
    if args.learn_epochs <= 0:
        return "--learn-epochs must be above 0"
    if args.learn_base is None:
        from cache.errors import VerifierError
        from cache.verifier_model import DEFAULT_MODEL, resolve_folder

        try:
            args.learn_base = resolve_folder(DEFAULT_MODEL)
        except VerifierError as exc:
            return f"--learn continues training the default verifier: {exc}"
    if not args.learn_base.is_dir():
        return f"--learn-base {args.learn_base} is not a folder"
    out = args.learn_out
    if out is not None and (out.exists() or not out.parent.is_dir()):
        return f"--learn-out {out} must not exist, in a folder that does"
    return None


def run(args: argparse.Namespace) -> int:
    import asyncio

    if args.threshold is None:
        args.threshold = LEARN_THRESHOLD if args.learn else THRESHOLD
    if not 0 < args.threshold <= 1 or not 0 < args.target_fp < 1 or args.concurrency < 1:
        return fail(
            NAME,
            "--threshold must be in (0, 1], --target-fp in (0, 1), --concurrency at least 1",
        )
    if args.learn and (problem := _learn_problem(args)):
        return fail(NAME, problem)
    configure_logging("warning")
    if args.learn:
        from proxy.demo_learn import run_learn

        return asyncio.run(run_learn(args))
    from proxy.demo import run_demo

    return asyncio.run(run_demo(args))
