"""The ``vetcache`` command: one subcommand per module of ``proxy.commands``.

    vetcache demo [--threshold T] [--target-fp F] [--concurrency N] [--seed S]
    vetcache serve [--config F] [--host H] [--port P] [--workers N]
    vetcache audit-worker [--config F] [--name N] [--metrics-port P]
    vetcache check-config F
    vetcache prepare-embedder [--config F]
    vetcache fake-upstream [--host H] [--port P] [--latency-ms L] [--embeddings hash|model] ...
    vetcache eval --pairs F [--model M] [--backend B] [--min-margin 0.18] [--format text|json]
    vetcache train --out DIR [--pairs F...] [--ledger] [--test-pairs F...] [--seed S] ...
    vetcache eval --verifier DIR --pairs F [--against DIR] [--max-fp 0.05] [--min-recall 0.5]
    vetcache tune [--config F] [--namespace N] --target-fp T [--pairs F] [--apply] [--plot F]
    vetcache rollout STEP --namespace N [--to NAME] [--pairs F] [--rate R] [--config F]
    vetcache invalidate --entry ID | [--namespace N] [--tenant T] [--model M] [--before T] | --all
    vetcache hash-key            (reads a key on stdin, prints its SHA-256)
    vetcache version             (or vetcache --version)

``vetcache COMMAND --help`` lists every option with its default. Errors are one line on
stderr (one per bad field for configs) and exit status 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from types import ModuleType

from proxy.commands import (
    audit_worker,
    check_config,
    demo,
    evaluate,
    fake_upstream,
    hash_key,
    invalidate,
    prepare_embedder,
    rollout,
    serve,
    train,
    tune,
    version,
)

COMMANDS: tuple[ModuleType, ...] = (
    demo,
    serve,
    audit_worker,
    check_config,
    prepare_embedder,
    fake_upstream,
    evaluate,
    train,
    tune,
    rollout,
    invalidate,
    hash_key,
    version,
)


class _HelpWithDefaults(argparse.HelpFormatter):
    """Each option's help ends with its default, when it has one worth saying (not None,
    not a flag's False, not already in the text)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        shown = "%(default)" in text or "(default" in text
        if shown or not action.option_strings or action.default in (None, False):
            return text
        if action.default is argparse.SUPPRESS:
            return text
        return f"{text} (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vetcache",
        description="OpenAI-compatible LLM gateway with a semantic cache that vets its own hits",
    )
    parser.add_argument("--version", action="version", version=version.text())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        each = sub.add_parser(
            command.NAME,
            help=command.HELP,
            description=command.HELP,
            formatter_class=_HelpWithDefaults,
        )
        command.add_arguments(each)
        each.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    status: int = args.run(args)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
