"""What the subcommands share: loading the config, logging, saying what went wrong."""

from __future__ import annotations

import sys
from pathlib import Path

from proxy.errors import ConfigError
from proxy.logs import LogFormat
from proxy.settings import Settings, load_settings

CONFIG_HELP = "YAML config file (settings also come from VETCACHE_* variables)"


def fail(command: str, message: str, status: int = 2) -> int:
    """Print ``vetcache: COMMAND: message`` on stderr; the exit status."""
    print(f"vetcache: {command}: {message}", file=sys.stderr)
    return status


def load(config: Path | None, **overrides: object) -> Settings:
    """The settings, or exit 2 with one line per bad field."""
    try:
        return load_settings(config_file=config, **overrides)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(f"vetcache: config error: {line}", file=sys.stderr)
        raise SystemExit(2) from None


def configure_logging(level: str, log_format: LogFormat = "text") -> None:
    """Logging for a command (``proxy.logs``)."""
    from proxy.logs import configure

    configure(level, log_format)
