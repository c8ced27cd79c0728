"""``vetcache rollout``: move a namespace to another embedding version (``cache.rollout``).

    vetcache rollout status   --namespace N [--config F] [--format text|json]
    vetcache rollout start    --namespace N --to NAME
    vetcache rollout migrate  --namespace N [--rate R] [--batch B]
    vetcache rollout gate     --namespace N --pairs FILE [--min-margin 0.18]
    vetcache rollout cutover  --namespace N
    vetcache rollout rollback --namespace N
    vetcache rollout abort    --namespace N
    vetcache rollout purge    --namespace N

Every step reads the same config as the gateway (the versions by name in
``cache.embedding_versions``, Redis, the audit ledger) and changes the store every replica
follows. ``migrate`` runs until every live entry is copied (rate-limited; killed, it resumes
where it stopped). Exit status: 0 done; 1 the step was refused (every reason on stderr) or
the gate failed; 2 bad input or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from audit.evaluate import DEFAULT_MIN_MARGIN
from proxy.commands.common import CONFIG_HELP, configure_logging, fail, load

if TYPE_CHECKING:
    from cache.rollout import Rollout
    from proxy.settings import Settings

NAME = "rollout"
HELP = "move a namespace to another embedding version: migrate, gate, shadow, cut over, roll back"
STEPS = ("status", "start", "migrate", "gate", "cutover", "rollback", "abort", "purge")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "exit status: 0 done; 1 refused or the gate failed; 2 bad input or config"
    parser.add_argument("step", choices=STEPS, help="what to do")
    parser.add_argument("--namespace", required=True, help="the namespace")
    parser.add_argument("--config", type=Path, help=CONFIG_HELP)
    parser.add_argument(
        "--to", metavar="NAME", help="start: the version (cache.embedding_versions)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        help="migrate: entries per second (default: cache.rollout.migration_rate)",
    )
    parser.add_argument("--batch", type=int, default=32, help="migrate: entries per saved step")
    parser.add_argument("--pairs", type=Path, metavar="FILE", help="gate: labelled pairs")
    parser.add_argument(
        "--min-margin", type=float, default=DEFAULT_MIN_MARGIN, help="gate: lowest margin"
    )
    parser.add_argument("--format", choices=("text", "json"), default="text", help="status: output")


def _usage(args: argparse.Namespace) -> str | None:
    if args.step == "start" and not args.to:
        return "start needs --to NAME"
    if args.step == "gate" and args.pairs is None:
        return "gate needs --pairs FILE"
    if args.rate is not None and args.rate <= 0:
        return "--rate must be > 0"
    if args.batch < 1:
        return "--batch must be >= 1"
    return None


def run(args: argparse.Namespace) -> int:
    from cache.keys import is_namespace

    problem = _usage(args)
    if problem is None and not is_namespace(args.namespace):
        problem = f"not a namespace: {args.namespace!r}"
    if problem is not None:
        return fail(NAME, problem)
    settings = load(args.config)
    configure_logging(settings.log_level, settings.log_format)
    if not settings.redis_url:
        return fail(
            NAME,
            "needs redis_url (VETCACHE_REDIS_URL): without Redis each gateway keeps its own "
            "store; use its admin routes (/admin/rollout/NAMESPACE)",
        )
    return asyncio.run(_run(args, settings))


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    from cache import build_versions
    from cache.errors import CacheError, EmbedderError, RolloutRefused
    from cache.rollout import Rollout
    from cache.stores.redis import RedisStore

    store = RedisStore(settings.redis_url or "", cluster=settings.redis_cluster)
    embedders = build_versions(settings.cache)
    try:
        await embedders.open()
        await store.open(embedders.primary.dimension)
        rollout = Rollout(store, embedders, settings.cache.rollout)
        return await _step(args, settings, rollout)
    except RolloutRefused as exc:
        for reason in exc.reasons:
            print(f"vetcache: rollout: refused: {reason}", file=sys.stderr)
        return 1
    except EmbedderError as exc:
        return fail(NAME, f"cannot load an embedding version: {exc}")
    except CacheError as exc:
        return fail(NAME, f"the store failed: {exc}")
    finally:
        await embedders.close()
        await store.close()


async def _step(args: argparse.Namespace, settings: Settings, rollout: Rollout) -> int:
    from proxy.commands import rollout_steps

    namespace = args.namespace
    if args.step == "migrate":
        rate = args.rate or settings.cache.rollout.migration_rate
        return await rollout_steps.migrate(rollout, namespace, rate, args.batch)
    if args.step == "gate":
        return await rollout_steps.gate(
            rollout, namespace, args.pairs, args.min_margin, settings.cache
        )
    if args.step == "start":
        await rollout.start(namespace, args.to)
    elif args.step == "cutover":
        await rollout.cutover(namespace, await rollout_steps.evidence(rollout, namespace, settings))
    elif args.step == "rollback":
        await rollout.rollback(namespace)
    elif args.step == "abort":
        print(f"{await rollout.abort(namespace)} entries of the target deleted")
    elif args.step == "purge":
        print(f"{await rollout.purge(namespace)} entries of the earlier version deleted")
    await rollout_steps.show(rollout, namespace, settings, args.format)
    return 0
