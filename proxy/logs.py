"""Process logging: one JSON object per line (``log_format: json``, the default) or plain
text, with the current request's id on every line logged while it is handled.

The JSON comes from python-json-logger; what this module adds is the request context: the
middleware sets ``REQUEST_ID`` and a ``TIMINGS`` dict per request, every record logged in
that context carries ``request_id``, and the gateway's stages (embed, vector search,
upstream, ...) add their milliseconds to ``TIMINGS`` for the access line. Prompt and answer
text are never logged at INFO or above; keys never.
"""

from __future__ import annotations

import logging
import os
import sys
from contextvars import ContextVar
from typing import Literal

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter

LogFormat = Literal["json", "text"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Record attributes other libraries attach that are no log fields: uvicorn's ANSI-coloured
# copy of the message, litellm's redaction marker (an object).
NOT_FIELDS = ("color_message", "litellm_redacted")

REQUEST_ID: ContextVar[str | None] = ContextVar("vetcache_request_id", default=None)
"""Id of the request being handled in this context (set by ``proxy.middleware``)."""
TIMINGS: ContextVar[dict[str, float] | None] = ContextVar("vetcache_timings", default=None)
"""Milliseconds per stage of the request being handled (set by ``proxy.middleware``)."""


def note_stage(stage: str, seconds: float) -> None:
    """Add a stage's time to the current request's timings (no-op outside a request)."""
    timings = TIMINGS.get()
    if timings is not None:
        timings[stage] = round(timings.get(stage, 0.0) + seconds * 1000, 3)


class _RequestContext(logging.Filter):
    """Adds ``request_id`` to records logged while a request is handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            request_id = REQUEST_ID.get()
            if request_id is not None:
                record.request_id = request_id
        return True


def configure(level: str, log_format: LogFormat = "json") -> None:
    """Send every logger's records to stderr in ``log_format`` at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(
            OrjsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
                reserved_attrs=[*RESERVED_ATTRS, *NOT_FIELDS],
            )
        )
        # Model loading draws tqdm progress bars on stderr: not JSON, and noise in a log.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TQDM_DISABLE", "1")
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    handler.addFilter(_RequestContext())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per upstream request
