"""``vetcache tune``: threshold -> hit rate and FP rate from the shared ledger, a
recommendation, and (``--apply``) the new threshold for every replica.

    vetcache tune [--config F] [--namespace N] --target-fp 0.05 [--pairs FILE]
                  [--hours H] [--min-band-labels N] [--apply] [--plot FILE]
                  [--format text|json]

A recommendation never goes where there are no labels: a move down must have
``--min-band-labels`` labels in the band it opens, and none goes below the lowest label.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from audit.errors import InputError
from audit.pairs import Pair, embed_similarities, load_pairs
from audit.tune import (
    DEFAULT_MIN_BAND_LABELS,
    TuneLabel,
    TuneReport,
    plot,
    render,
    report_from_ledger,
)
from proxy.commands import common
from proxy.commands.common import CONFIG_HELP
from proxy.settings import Settings

NAME = "tune"
HELP = "threshold -> hit rate and FP rate; recommend, apply"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help=f"{CONFIG_HELP}; needs redis_url")
    parser.add_argument("--namespace", default="default", help="the namespace to tune")
    parser.add_argument("--target-fp", type=float, required=True, help="FP-rate target, e.g. 0.05")
    parser.add_argument("--pairs", type=Path, help="labelled pairs (TSV or JSONL) to add")
    parser.add_argument(
        "--hours", type=int, default=168, help="verdicts and lookups of the last H hours"
    )
    parser.add_argument(
        "--min-band-labels",
        type=int,
        default=DEFAULT_MIN_BAND_LABELS,
        help="labels a move down must have between the new and the current threshold "
        f"(default {DEFAULT_MIN_BAND_LABELS})",
    )
    parser.add_argument("--apply", action="store_true", help="set the recommended threshold")
    parser.add_argument("--plot", type=Path, help="write the curves to this PNG")
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="a table, or one JSON object"
    )


def fail(message: str) -> int:
    return common.fail(NAME, message)


def run(args: argparse.Namespace) -> int:
    """The command; its exit status."""
    settings = common.load(args.config)
    problem = _problem(settings, args)
    if problem is not None:
        return fail(problem)
    pairs: list[Pair] = []
    if args.pairs is not None:
        try:
            pairs = load_pairs(args.pairs)
        except InputError as exc:
            for line in exc.errors[:20]:
                print(f"vetcache: tune: {line}", file=sys.stderr)
            return 2
    try:
        extra = asyncio.run(pair_labels(pairs, settings)) if pairs else []
        report, applied = asyncio.run(_run(settings, args, extra))
    except ConnectionError as exc:
        return fail(f"Redis unreachable: {exc}")
    if args.format == "json":
        print(report.model_dump_json(indent=2))
    else:
        print(render(report))
    if args.plot is not None:
        plot(report, str(args.plot))
    if args.apply:
        if applied is None:
            print(
                "vetcache: tune: nothing applied: no threshold meets the target with evidence",
                file=sys.stderr,
            )
            return 1
        print(
            f"applied: namespace {args.namespace} threshold {applied:.2f} "
            f"(was {report.current_threshold}); replicas follow within "
            f"{settings.cache.threshold_refresh_s:g} s",
            file=sys.stderr,
        )
    return 0


def _problem(settings: Settings, args: argparse.Namespace) -> str | None:
    if not 0 < args.target_fp < 1:
        return "--target-fp must be between 0 and 1"
    if args.hours < 1:
        return "--hours must be at least 1"
    if args.min_band_labels < 1:
        return "--min-band-labels must be at least 1"
    if not settings.redis_url:
        return (
            "needs redis_url: it reads the verdicts every replica shares; with the "
            "embedded store, ask the running gateway (GET /admin/tune)"
        )
    return None


async def _run(
    settings: Settings, args: argparse.Namespace, extra: list[TuneLabel]
) -> tuple[TuneReport, float | None]:

    from audit import build_queue_and_ledger
    from audit.errors import LedgerError
    from cache.errors import StoreError
    from cache.stores.redis import RedisStore

    assert settings.redis_url is not None
    queue, ledger = build_queue_and_ledger(
        settings.audit, settings.redis_url, redis_cluster=settings.redis_cluster
    )
    store = RedisStore(settings.redis_url, cluster=settings.redis_cluster)
    try:
        current = settings.cache.threshold_for(args.namespace, await store.thresholds())
        report = await report_from_ledger(
            ledger,
            settings.audit,
            args.namespace,
            args.target_fp,
            hours=args.hours,
            current=current,
            extra=extra,
            min_band_labels=args.min_band_labels,
        )
        applied = None
        if args.apply and report.recommended is not None:
            await store.set_threshold(args.namespace, report.recommended)
            applied = report.recommended
    except (LedgerError, StoreError) as exc:
        raise ConnectionError(type(exc).__name__) from exc
    finally:
        await queue.close()
        await ledger.close()
        await store.close()
    return report, applied


async def pair_labels(pairs: list[Pair], settings: Settings) -> list[TuneLabel]:
    """Labels from a pair file, scored by the configured embedder (weight 1)."""
    similarities, _ = await embed_similarities(pairs, settings.cache)
    return [
        TuneLabel(similarity=s, false_positive=p.label == 0, weight=1.0, kind="pair")
        for p, s in zip(pairs, similarities, strict=True)
    ]
