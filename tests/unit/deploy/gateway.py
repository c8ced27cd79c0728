"""What the deploy files hand to the gateway: command lines for its CLI, the health routes
their probes call, and a process environment for its settings."""

from __future__ import annotations

import argparse
import os

import pytest


def parse_cli(argv: list[str]) -> argparse.Namespace:
    """``vetcache ARGV`` parsed by the real CLI; the test fails if it does not parse."""
    from proxy.cli import build_parser

    try:
        return build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"`vetcache {' '.join(argv)}` is not a valid command line")


def routes() -> set[str]:
    """The paths proxy/routes/health.py serves."""
    from proxy.routes.health import router

    return {getattr(route, "path", "") for route in router.routes}


def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No vetcache setting or upstream key from the test's own environment."""
    for name in list(os.environ):
        if name.startswith("VETCACHE_") or name in ("OPENAI_API_KEY", "UPSTREAM_API_KEY"):
            monkeypatch.delenv(name)
