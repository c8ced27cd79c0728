"""``vetcache eval --against M`` / ``--ledger``: the release gate for an embedding model
(``audit.training.embedder_gate``).

    vetcache eval --model DIR (--pairs FILE | --ledger [--config F] [--namespace N])
                  [--against M] [--threshold T] [--min-margin 0.18] [--min-cohort 20]
                  [--tolerance 0.02] [--backend B] [--format text|json]

The labelled pairs come from a file (the 8-column TSV, or anything ``audit.pairs`` reads)
or straight from the audit ledger (``audit.training.ledger``: judged hits and near-misses,
reviews, feedback; the failed hits are the hard negatives). The candidate (``--model``) and
the model in force (``--against``) are measured on the same pairs per cohort (product, kind,
language, length): margin, and FP share and recall at ``--threshold`` (default: the config's
``cache.threshold``). Exit status: 0 the candidate passes; 1 it is refused, each failing
cohort named with why; 2 bad input, a model that cannot be loaded, or bad usage; 3 the
pairs lack a class (no margin to gate).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from audit.errors import InputError, LedgerError
from audit.evaluate import EXIT_CANNOT_GATE
from audit.pairs import Pair, Similarities
from audit.training.embedder_gate import EmbedderGateLimits, check
from audit.training.embedder_metrics import EmbedderMetrics, by_cohort, table
from audit.training.gate import GateResult
from audit.training.records import TrainingPair
from cache.errors import EmbedderError
from cache.settings import CacheSettings
from proxy.commands import common
from proxy.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The embedder gate's options, in their own group of ``vetcache eval``'s."""
    group = parser.add_argument_group("embedder gate (with --against or --ledger)")
    group.add_argument(
        "--ledger", action="store_true",
        help="read the labelled pairs from the audit ledger (of --config) instead of --pairs",
    )  # fmt: skip
    group.add_argument(
        "--config", type=Path, help=f"{common.CONFIG_HELP}; the ledger, threshold, onnx_dir"
    )
    group.add_argument("--namespace", help="with --ledger: only this namespace's labels")
    group.add_argument(
        "--threshold", type=float,
        help="similarity FP share and recall are measured at (default: cache.threshold)",
    )  # fmt: skip


async def labelled_pairs(args: argparse.Namespace, settings: Settings) -> list[TrainingPair]:
    """The pairs of ``--pairs`` or, with ``--ledger``, of the configured ledger."""
    if not args.ledger:
        from audit.training.files import load_pair_file

        return load_pair_file(args.pairs)
    from audit.training.ledger import read_audit_ledger

    if not settings.redis_url:
        raise InputError(["--ledger needs redis_url (in --config or VETCACHE_REDIS_URL)"])
    return await read_audit_ledger(
        settings.audit, settings.redis_url, redis_cluster=settings.redis_cluster,
        namespace=args.namespace,
    )  # fmt: skip


async def measure(
    embedder: CacheSettings,
    pairs: Sequence[TrainingPair],
    threshold: float,
    similarities: Similarities,
) -> tuple[dict[str, EmbedderMetrics], str]:
    """The cohort metrics of the embedder ``embedder`` names on ``pairs`` at ``threshold``,
    and its fingerprint (``vetcache eval --model`` and ``vetcache rollout gate``)."""
    plain = [Pair(p.text_a, p.text_b, p.label, p.cohorts.kind, 0) for p in pairs]
    values, fingerprint = await similarities(plain, embedder)
    return by_cohort(pairs, values, threshold), fingerprint


async def _measure(
    model: str,
    pairs: Sequence[TrainingPair],
    args: argparse.Namespace,
    settings: Settings,
    similarities: Similarities,
) -> tuple[dict[str, EmbedderMetrics], str]:
    embedder = CacheSettings(
        embedding_model=model, embedding_backend=args.backend, onnx_dir=settings.cache.onnx_dir
    )
    return await measure(embedder, pairs, args.threshold, similarities)


def _render(
    args: argparse.Namespace,
    metrics: dict[str, EmbedderMetrics],
    in_force: dict[str, EmbedderMetrics] | None,
    result: GateResult,
) -> str:
    if args.format == "json":
        document = {
            "model": args.model,
            "against": args.against,
            "threshold": args.threshold,
            "passed": result.passed,
            "gated": result.gated,
            "failures": result.failures,
            "cohorts": {name: m.model_dump() for name, m in metrics.items()},
            "in_force": None
            if in_force is None
            else {name: m.model_dump() for name, m in in_force.items()},
        }
        return json.dumps(document, indent=2) + "\n"
    return f"{table(metrics, in_force, result.notes())}\n{result.verdict}\n"


async def run_gate(
    args: argparse.Namespace, *, similarities: Similarities, out: TextIO, err: TextIO
) -> int:
    """Measure the candidate (and the model in force), gate, print; the exit status."""
    settings = common.load(args.config, auth={"enabled": False})
    if args.threshold is None:
        args.threshold = settings.cache.threshold
    limits = EmbedderGateLimits(
        min_margin=args.min_margin, min_cohort=args.min_cohort, tolerance=args.tolerance
    )
    try:
        pairs = await labelled_pairs(args, settings)
        metrics, fingerprint = await _measure(args.model, pairs, args, settings, similarities)
        in_force, against = None, ""
        if args.against is not None:
            in_force, against = await _measure(args.against, pairs, args, settings, similarities)
    except (InputError, EmbedderError, LedgerError) as exc:
        problems = exc.errors if isinstance(exc, InputError) else [str(exc)]
        for line in problems[:20]:
            print(f"vetcache: eval: {line}", file=err)
        return 2
    source = "the ledger" if args.ledger else str(args.pairs)
    overall = metrics.get("all")
    if overall is None or overall.margin is None:
        print(f"vetcache: eval: {source}: no margin to gate (needs both labels)", file=err)
        return EXIT_CANNOT_GATE
    result = check(metrics, limits, in_force)
    if args.format == "text":
        out.write(
            f"vetcache eval --model {args.model}: {len(pairs)} pairs from {source}; at "
            f"threshold {args.threshold}; candidate {fingerprint}"
            + (f"; in force {against} (margin0 fp0 recall0)" if against else "")
            + "\n"
        )
    out.write(_render(args, metrics, in_force, result))
    return result.exit_status
