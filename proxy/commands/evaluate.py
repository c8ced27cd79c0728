"""``vetcache eval``: does an embedding model separate same-answer pairs from
different-answer pairs well enough to ship? A CI gate for embedder releases.

    vetcache eval --pairs FILE [--model M] [--backend B] [--min-margin 0.18]
                  [--thresholds 0.80,0.85,...] [--cohort-depth 1] [--gate-single-class]
                  [--context-policy P] [--last-turns N] [--format text|json]
    vetcache eval --verifier DIR --pairs FILE [--against DIR] ...   (``verifier_gate``)
    vetcache eval --model DIR (--pairs FILE | --ledger [--config F] [--namespace N])
                  [--against M] [--threshold T] ...                  (``embedder_gate``)

The pairs file (TSV or JSONL, pairs, triplets or conversation pairs) is read by
``audit.pairs``; conversation pairs are keyed under ``--context-policy`` by
``audit.conversations`` (different scopes never meet, exact repeats hit); the scoring and
gate are ``audit.evaluate``, the output ``audit.eval_report``. Exit status (``EXIT_HELP``):
0 when every gated margin is >= ``--min-margin``; 1 when one is below; 2 on bad input (every
malformed row listed as ``FILE:LINE: problem``), a model that cannot be loaded, or bad usage;
3 when the file has no positives or no negatives (e.g. the hard-negative export, all label
0): there is no margin to gate, which is a failure, not a vacuous pass.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from audit.conversations import apply_policy
from audit.errors import InputError
from audit.eval_report import render_json, render_text
from audit.evaluate import DEFAULT_MIN_MARGIN, Gate, Report, check_gate, score
from audit.pairs import DEFAULT_COHORT_DEPTH, Pair, Similarities, embed_similarities, load_pairs
from audit.tune import DEFAULT_THRESHOLDS
from cache.embedder import BUNDLED_MODEL
from cache.errors import EmbedderError
from cache.schema import ContextPolicy
from cache.settings import EMBEDDING_BACKENDS, CacheSettings
from proxy.commands import embedder_gate, verifier_gate

NAME = "eval"
HELP = "how well the embedder separates same-answer pairs from traps, per cohort"
EXIT_HELP = (
    "exit status: 0 every gated margin >= --min-margin (with --verifier, --against or "
    "--ledger: every gated cohort passes); 1 one is below or regresses (the candidate is "
    "refused); 2 bad input, model or usage; 3 cannot gate: the file has no positives or "
    "no negatives"
)
MAX_ERRORS_SHOWN = 20


def _print_errors(errors: Sequence[str], err: TextIO) -> None:
    for line in errors[:MAX_ERRORS_SHOWN]:
        print(line, file=err)
    if len(errors) > MAX_ERRORS_SHOWN:
        print(f"... and {len(errors) - MAX_ERRORS_SHOWN} more", file=err)
    print("vetcache: eval: bad input, nothing computed", file=err)


def _output(
    args: argparse.Namespace, pairs: Sequence[Pair], report: Report, gate: Gate, model: str
) -> str:
    if args.format == "json":
        meta = {
            "source": str(args.pairs),
            "model": args.model,
            "backend": args.backend,
            "fingerprint": model,
            "cohort_depth": args.cohort_depth,
            "context_policy": args.context_policy,
            "last_turns": args.last_turns,
            "pairs": len(pairs),
        }
        return render_json(report, gate, **meta) + "\n"
    title = (
        f"vetcache eval: {len(pairs)} pairs from {args.pairs}; model {args.model} ({model}); "
        f"cohort depth {args.cohort_depth}"
    )
    if any(pair.messages is not None for pair in pairs):
        title += f"; context policy {args.context_policy} (last_turns {args.last_turns})"
    return render_text(report, gate, title=title)


async def evaluate(
    args: argparse.Namespace,
    *,
    similarities: Similarities = embed_similarities,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Parse, embed, score, print; the exit status (0 pass, 1 a margin too small, 2 bad
    input or model, 3 a class missing). ``args`` as ``add_arguments`` defines them."""
    out, err = out or sys.stdout, err or sys.stderr
    if problem := _usage_problem(args):
        print(f"vetcache: eval: {problem}", file=err)
        return 2
    if args.verifier is not None:
        return await verifier_gate.run_gate(args, similarities=similarities, out=out, err=err)
    if args.against is not None or args.ledger:
        return await embedder_gate.run_gate(args, similarities=similarities, out=out, err=err)
    try:
        pairs = load_pairs(args.pairs, cohort_depth=args.cohort_depth)
        pairs = apply_policy(pairs, args.context_policy, args.last_turns)
    except InputError as exc:
        _print_errors(exc.errors, err)
        return 2
    try:
        embedder = CacheSettings(embedding_model=args.model, embedding_backend=args.backend)
        values, fingerprint = await similarities(pairs, embedder)
    except EmbedderError as exc:
        print(f"vetcache: eval: {exc}", file=err)
        return 2
    report = score(pairs, values, thresholds=args.thresholds)
    gate = check_gate(report, min_margin=args.min_margin, gate_single_class=args.gate_single_class)
    out.write(_output(args, pairs, report, gate, fingerprint))
    return gate.exit_status


def _usage_problem(args: argparse.Namespace) -> str | None:
    if args.ledger and args.pairs is not None:
        return "--pairs or --ledger, not both"
    if args.pairs is None and not args.ledger:
        return "--pairs FILE is required (or --ledger)"
    if args.ledger and args.verifier is not None:
        return "--ledger feeds the embedder gate; the verifier gate reads --pairs"
    return None


def run(args: argparse.Namespace) -> int:
    """The command (after ``add_arguments``): its exit status."""
    return asyncio.run(evaluate(args))


def parse_thresholds(value: str) -> tuple[float, ...]:
    """``"0.80,0.85"`` -> (0.8, 0.85), sorted, each in [-1, 1]."""
    try:
        thresholds = {float(part) for part in value.split(",") if part.strip()}
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of numbers: {value!r}"
        ) from None
    if not thresholds or not all(-1.0 <= t <= 1.0 for t in thresholds):
        raise argparse.ArgumentTypeError(f"thresholds must be numbers in [-1, 1]: {value!r}")
    return tuple(sorted(thresholds))


def _margin(value: str) -> float:
    try:
        margin = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not math.isfinite(margin):
        raise argparse.ArgumentTypeError(f"not a finite number: {value!r}")
    return margin


def _depth(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"not a whole number >= 0: {value!r}")
    return int(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``vetcache eval`` (and its exit statuses, after them in ``--help``)."""
    parser.epilog = EXIT_HELP
    parser.add_argument(
        "--pairs",
        type=Path,
        metavar="FILE",
        help="labelled pairs, triplets or conversation pairs (or --ledger)",
    )
    parser.add_argument(
        "--model", default=BUNDLED_MODEL, help="sentence-transformers model name or path"
    )
    parser.add_argument(
        "--backend",
        choices=EMBEDDING_BACKENDS,
        default=CacheSettings().embedding_backend,
        help="how the model runs, as cache.embedding_backend (default: the gateway's, "
        f"{CacheSettings().embedding_backend})",
    )
    parser.add_argument(
        "--min-margin",
        type=_margin,
        default=DEFAULT_MIN_MARGIN,
        help="lowest acceptable mean_pos - mean_neg",
    )
    parser.add_argument(
        "--thresholds",
        type=parse_thresholds,
        default=DEFAULT_THRESHOLDS,
        metavar="T1,T2,...",
        help="similarity thresholds to sweep (default: 0.70..0.99 in steps of 0.01)",
    )
    parser.add_argument(
        "--cohort-depth",
        type=_depth,
        default=DEFAULT_COHORT_DEPTH,
        metavar="N",
        help="group by the first N '/'-segments of the category (0: all of it)",
    )
    parser.add_argument(
        "--gate-single-class",
        action="store_true",
        help="also fail single-class cohorts whose margin against the pooled other class "
        "is below --min-margin",
    )
    _add_conversation_arguments(parser)
    verifier_gate.add_arguments(parser)
    embedder_gate.add_arguments(parser)
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="a table, or one JSON object"
    )


def _add_conversation_arguments(parser: argparse.ArgumentParser) -> None:
    """How conversation pairs are keyed: as the gateway's ``cache.context_policy``."""
    parser.add_argument(
        "--context-policy",
        choices=typing.get_args(ContextPolicy),
        default=CacheSettings().context_policy,
        help="how conversation pairs are keyed, as cache.context_policy (default: the "
        f"gateway's, {CacheSettings().context_policy})",
    )
    parser.add_argument(
        "--last-turns",
        type=_depth,
        default=CacheSettings().last_turns,
        metavar="N",
        help="earlier turns that must match under --context-policy last_turns",
    )
