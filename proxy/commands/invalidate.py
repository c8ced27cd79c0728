"""``vetcache invalidate``: delete cache entries from the Redis store every replica reads.

    vetcache invalidate --entry ID [--config F]
    vetcache invalidate [--namespace N] [--tenant T] [--model ALIAS] [--before TIME] [--config F]
    vetcache invalidate --all [--config F]

The conditions given must all hold; none at all is refused (``--all`` deletes everything).
Every replica stops serving the entries at once; the deletion is logged as one line naming
the command and the user who ran it. Without Redis each gateway keeps its own store: use
its admin routes (``POST /admin/invalidate``). Exit status: 0 done; 1 ``--entry`` named no
entry; 2 bad input or configuration, or the store failed.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
from pathlib import Path
from typing import TYPE_CHECKING

from proxy.commands.common import CONFIG_HELP, configure_logging, fail, load

if TYPE_CHECKING:
    from cache.invalidation import Invalidation
    from proxy.settings import Settings

NAME = "invalidate"
HELP = "delete cache entries: one by id, or by namespace, tenant, model alias and age"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "exit status: 0 done; 1 --entry named no entry; 2 bad input, config or store"
    parser.add_argument("--entry", metavar="ID", help="an entry id (x-vetcache-entry)")
    parser.add_argument("--namespace", help="entries of this namespace")
    parser.add_argument("--tenant", help="entries this tenant's requests produced")
    parser.add_argument("--model", metavar="ALIAS", help="entries of this model alias")
    parser.add_argument(
        "--before",
        metavar="TIME",
        help="entries admitted before TIME: ISO 8601 with a zone (2026-01-31T12:00:00Z) "
        "or unix seconds",
    )
    parser.add_argument("--all", action="store_true", help="every entry (alone)")
    parser.add_argument("--config", type=Path, help=CONFIG_HELP)


def _which(args: argparse.Namespace) -> Invalidation:
    """The filter the options name (pydantic's ``ValidationError`` when it is not one)."""
    from cache.invalidation import Invalidation

    given = {
        "entry": args.entry,
        "namespace": args.namespace,
        "tenant": args.tenant,
        "model": args.model,
        "created_before": args.before,
    }
    conditions: dict[str, object] = {k: v for k, v in given.items() if v is not None}
    if args.all:
        conditions["all"] = True
    return Invalidation.model_validate(conditions)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    try:
        which = _which(args)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        where = "".join(f"--{part} " for part in error["loc"]).replace("created_before", "before")
        return fail(NAME, f"{where}{error['msg'].removeprefix('Value error, ')}")
    settings = load(args.config)
    if not settings.redis_url:
        return fail(
            NAME,
            "needs redis_url (VETCACHE_REDIS_URL): without Redis each gateway keeps its own "
            "store; use its admin routes (POST /admin/invalidate)",
        )
    configure_logging(settings.log_level, settings.log_format)
    return asyncio.run(_run(which, settings))


async def _run(which: Invalidation, settings: Settings) -> int:
    from cache.errors import CacheError
    from cache.invalidation import invalidate
    from cache.stores.redis import RedisStore

    store = RedisStore(settings.redis_url or "", cluster=settings.redis_cluster)
    try:
        deleted = await invalidate(store, which, _who())
    except CacheError as exc:
        return fail(NAME, f"the store failed: {exc}")
    finally:
        await store.close()
    print(f"{deleted} entries deleted")
    return 1 if which.entry is not None and not deleted else 0


def _who() -> str:
    """``cli:<user>``, for the log line (``cli`` when the system names no user)."""
    try:
        return f"cli:{getpass.getuser()}"
    except OSError:
        return "cli"
