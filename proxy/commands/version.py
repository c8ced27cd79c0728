"""``vetcache version`` (also ``vetcache --version``)."""

from __future__ import annotations

import argparse

from proxy import __version__

NAME = "version"
HELP = "print the version"


def text() -> str:
    """What both forms print."""
    return f"vetcache {__version__}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options."""


def run(args: argparse.Namespace) -> int:
    print(text())
    return 0
