"""How a failure of the direct lane (``proxy.lane_client``) becomes one of the gateway's
errors, with the same statuses and codes as the litellm lane (``proxy.upstream_errors``),
and the one log line it leaves: what failed, the status and code answered; never the
upstream's message, which may quote the prompt or the answer.

    upstream 400 / 422           InvalidRequest, the upstream's code (else upstream_rejected)
    upstream 4xx / 5xx           UpstreamError, the upstream's status and code
    a timeout                    UpstreamTimeout 504
    no connection, or it broke   UpstreamUnreachable 502
    a 200 that is no completion  UpstreamInvalidReply 502
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import orjson

from proxy.errors import (
    GatewayError,
    UpstreamError,
    UpstreamInvalidReply,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from proxy.upstream_errors import INVALID_REPLY, TIMED_OUT, UNREACHABLE, answered
from proxy.upstream_errors import logged as log_failure

RETRIED_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))
"""Upstream statuses worth another try (as OpenAI's own client retries)."""


class LaneFailure(Exception):
    """One failed attempt: the gateway error it becomes and whether another try may help."""

    def __init__(
        self,
        error: GatewayError,
        cause: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(cause)
        self.error = error
        self.cause = cause
        """What failed, for the log line (an exception's type name, ``HTTP <status>``)."""
        self.retryable = retryable
        self.retry_after = retry_after
        """Seconds the upstream asked to wait (``Retry-After``), when it did."""

    @property
    def falls_back(self) -> bool:
        """Whether the alias's fallback chain is tried: not for a request the upstream
        rejected as malformed (as litellm's Router)."""
        return self.error.status_code != 400


def status_failure(status: int, raw: bytes, headers: Mapping[str, str]) -> LaneFailure:
    """The failure for an upstream answer with an HTTP error status."""
    upstream = _error_body(raw)
    message = str(upstream.get("message") or f"status {status}")[:1000]
    return LaneFailure(
        answered(status, upstream, message),
        f"HTTP {status}",
        retryable=status in RETRIED_STATUSES,
        retry_after=_retry_after(headers.get("retry-after")),
    )


def transport_failure(exc: BaseException) -> LaneFailure:
    """The failure for an exception of the HTTP client (a timeout, a refused or broken
    connection)."""
    name = type(exc).__name__
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return LaneFailure(UpstreamTimeout(TIMED_OUT), name, retryable=True)
    # A refused connection and one that broke midway read the same, as on the litellm lane.
    return LaneFailure(UpstreamUnreachable(UNREACHABLE), name, retryable=True)


def invalid_reply(cause: str) -> LaneFailure:
    """The failure for a 200 that is no chat completion (its text is never passed on). Not
    retried: a captive portal or a misrouted proxy answers the same way again."""
    return LaneFailure(UpstreamInvalidReply(INVALID_REPLY), cause, retryable=False)


def stream_error_event(event: Mapping[str, Any]) -> LaneFailure:
    """The failure for an error event an upstream sent inside a stream."""
    inner = event.get("error")
    inner = inner if isinstance(inner, dict) else {}
    code = inner.get("code")
    message = str(inner.get("message") or "the upstream model's stream failed")[:1000]
    error = UpstreamError(message, status=502, code=str(code) if code else "upstream_error")
    return LaneFailure(error, "error event", retryable=False)


def logged(failure: LaneFailure) -> GatewayError:
    """The gateway error for ``failure``, after its one log line (``proxy.upstream_errors``)."""
    return log_failure(failure.error, failure.cause)


def _error_body(raw: bytes) -> dict[str, Any]:
    """The upstream's OpenAI-style error object, when it sent one."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    inner = body.get("error", body) if isinstance(body, dict) else None
    return inner if isinstance(inner, dict) and "message" in inner else {}


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the delay form; an HTTP date is ignored)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
