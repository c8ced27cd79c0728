"""``vetcache hash-key``: the SHA-256 of a key read on stdin (the form keys are configured
in: ``auth.api_keys[].key_sha256``, ``admin_key_sha256``)."""

from __future__ import annotations

import argparse
import sys

from proxy.commands.common import fail

NAME = "hash-key"
HELP = "print the SHA-256 of a key read on stdin"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options: the key comes on stdin, never on the command line."""


def run(args: argparse.Namespace) -> int:
    from proxy.auth import hash_key

    key = sys.stdin.readline().strip()
    if not key:
        return fail(NAME, "no key on stdin")
    print(hash_key(key))
    return 0
