"""``vetcache check-config``: validate a config file and exit."""

from __future__ import annotations

import argparse
from pathlib import Path

from proxy.commands.common import load

NAME = "check-config"
HELP = "validate a config file and exit"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="the YAML config file to check")


def run(args: argparse.Namespace) -> int:
    settings = load(args.file)
    auth = f"auth on, {len(settings.auth.api_keys)} key(s)" if settings.auth.enabled else "auth off"
    print(f"ok: {len(settings.aliases)} model alias(es) ({', '.join(settings.aliases)}); {auth}")
    return 0
