"""Process logging: one JSON object per line (``log_format: json``, the default) or plain
text, with the current request's id on every line logged while it is handled.

The JSON comes from python-json-logger; what this module adds is the request context: the
middleware sets ``REQUEST_ID`` and a ``TIMINGS`` dict per request, every record logged in
that context carries ``request_id``, and the gateway's stages (embed, vector search,
upstream, ...) add their milliseconds to ``TIMINGS`` for the access line. Prompt and answer
text are never logged at INFO or above; keys never.

Libraries' loggers (litellm's, uvicorn's) and Python warnings go through the same handler
and format. litellm's records quote what the upstream said (its errors echo the prompt, an
unreadable reply the answer): above DEBUG only their logger, level and exception type are
written. A warning is written as its category and place, never its message (pydantic's
serializer warnings quote the value).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from contextvars import ContextVar
from typing import Any, Literal, TextIO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter

from audit.llm_client import LITELLM_LOGGERS

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


SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
"""uvicorn's loggers: sent to the root handler, not handlers of their own."""


def _quotes_text(name: str) -> bool:
    """Whether records of logger ``name`` may quote a prompt or an answer (litellm's)."""
    return any(name == root or name.startswith(root + ".") for root in LITELLM_LOGGERS)


class _Withheld(logging.Filter):
    """Above DEBUG, a record of litellm's keeps its logger, level and exception type only:
    the message and traceback may quote what the upstream said."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.DEBUG and _quotes_text(record.name):
            error = record.exc_info[1] if record.exc_info else None
            if error is None:
                error = next((a for a in _args(record) if isinstance(a, BaseException)), None)
            kind = f" ({type(error).__name__})" if error is not None else ""
            record.msg = f"{record.name} {record.levelname}{kind}: text withheld"
            record.args, record.exc_info, record.exc_text, record.stack_info = (), None, None, None
            if error is not None:
                record.error_type = type(error).__name__
        return True


def _args(record: logging.LogRecord) -> tuple[Any, ...]:
    args = record.args
    if isinstance(args, tuple):
        return args
    return () if args is None else (args,)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """``warnings.showwarning`` for a gateway: one log line with the category and place."""
    logging.getLogger("py.warnings").warning(
        "%s at %s:%d", category.__name__, filename, lineno, extra={"category": category.__name__}
    )


def configure(level: str, log_format: LogFormat = "json") -> None:
    """Send every logger's records to stderr in ``log_format`` at ``level``: the process's,
    its libraries' (litellm's withheld, see the module) and Python warnings."""
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
    handler.addFilter(_Withheld())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in SERVER_LOGGERS:
        logging.getLogger(name).handlers.clear()
    for name in (*SERVER_LOGGERS, *LITELLM_LOGGERS):
        logging.getLogger(name).propagate = True
    warnings.showwarning = _show_warning
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per upstream request
