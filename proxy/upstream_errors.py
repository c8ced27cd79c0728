"""How an upstream failure raised by litellm becomes one of the gateway's errors, and the one
log line it leaves: the exception's type, the status and code answered, the request id;
never the upstream's message, which may quote the prompt or the answer."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import orjson

from proxy.errors import (
    GatewayError,
    InvalidRequest,
    UpstreamError,
    UpstreamInvalidReply,
    UpstreamTimeout,
    UpstreamUnreachable,
)

log = logging.getLogger("vetcache.upstream")

INVALID_REPLY = "the upstream model's reply was not a chat completion"
"""The message of ``UpstreamInvalidReply``: the reply itself is never passed on."""


TIMED_OUT = "the upstream model did not answer in time"
UNREACHABLE = "could not connect to the upstream model"


def translate(exc: Exception, timeout: type[Exception]) -> GatewayError:
    """The gateway error for an exception raised by litellm (``timeout``: litellm's
    ``Timeout`` class), logged as one line (see the module)."""
    return logged(_translated(exc, timeout), type(exc).__name__)


def logged(error: GatewayError, cause: str) -> GatewayError:
    """``error``, after the one log line of a failed upstream call (both lanes): what failed
    (``cause``: an exception's type name, ``HTTP <status>``), the status and code answered."""
    level = logging.INFO if error.status_code < 500 else logging.WARNING
    log.log(
        level,
        "upstream call failed: %s, answered %d %s",
        cause,
        error.status_code,
        error.code,
        extra={"error_type": cause, "status": error.status_code, "code": error.code},
    )
    return error


def answered(status: int, upstream: Mapping[str, Any], message: str) -> GatewayError:
    """The gateway error for an upstream that answered HTTP ``status`` (4xx, 5xx) with its
    error object ``upstream`` (empty when it sent none): a rejected request keeps the
    upstream's code and param, any other status its status and code (both lanes)."""
    code = upstream.get("code")
    param = upstream.get("param")
    if status in (400, 422):
        return InvalidRequest(
            message,
            param=param if isinstance(param, str) else None,
            code=str(code) if code else "upstream_rejected",
        )
    return UpstreamError(message, status=status, code=str(code) if code else None)


def _translated(exc: Exception, timeout: type[Exception]) -> GatewayError:
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, timeout):
        return UpstreamTimeout(TIMED_OUT)
    if _is_connection_failure(exc):
        return UpstreamUnreachable(UNREACHABLE)
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int) or not 400 <= status < 600:
        return UpstreamUnreachable(f"upstream call failed ({type(exc).__name__})")
    if status >= 500 and not _answered_with_an_error(exc):
        return UpstreamInvalidReply(INVALID_REPLY)
    upstream = _upstream_error_body(exc)
    message = str(upstream.get("message") or _litellm_message(exc) or f"status {status}")
    return answered(status, upstream, message)


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 16:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _is_connection_failure(exc: Exception) -> bool:
    """Whether ``exc`` means the upstream could not be reached at all.

    litellm re-raises a refused connection as ``InternalServerError`` (status 500), so the
    status alone cannot tell it from an upstream that answered 500. The original transport
    error is kept in the exception chain; look for it there.
    """
    import openai

    for cause in _causes(exc):
        if isinstance(cause, openai.APITimeoutError):
            return False
        if isinstance(cause, openai.APIConnectionError | ConnectionError):
            return True
    return False


def _answered_with_an_error(exc: Exception) -> bool:
    """Whether the upstream answered with an HTTP error status.

    litellm raises a status-500 error of its own both for an upstream 500 and for a 200 it
    could not read (an HTML page, JSON without ``choices``); only the first has the HTTP
    client's status error in its chain.
    """
    import httpx

    return any(isinstance(cause, httpx.HTTPStatusError) for cause in _causes(exc))


_LITELLM_PREFIX = re.compile(r"^(litellm\.)?[A-Za-z]+Error: ")


def _litellm_message(exc: Exception) -> str:
    """litellm's own message for an error it raised before or without an upstream answer,
    less its class-name prefixes and the routing note it appends."""
    message = str(getattr(exc, "message", "") or "").split("\n\nLiteLLM: model group", 1)[0]
    while _LITELLM_PREFIX.match(message):
        message = _LITELLM_PREFIX.sub("", message, count=1)
    return message.strip()[:1000]


def _upstream_error_body(exc: Exception) -> dict[str, Any]:
    """The upstream's own OpenAI-style error object, when it sent one."""
    for cause in _causes(exc):
        body = getattr(cause, "body", None)
        if isinstance(body, dict):
            inner = body.get("error", body)
            if isinstance(inner, dict) and "message" in inner:
                return inner
    return _error_in_message(exc)


def _error_in_message(exc: Exception) -> dict[str, Any]:
    """The upstream's error object quoted in litellm's message. Fragile, and kept here for
    that: litellm's Responses API calls (``aresponses``) keep no body on the exception, only
    a message ``...<Provider>Exception - <the upstream's body>``."""
    message = str(getattr(exc, "message", "") or "").split("\n\nLiteLLM: model group", 1)[0]
    _, found, quoted = message.partition("Exception - ")
    try:
        body = orjson.loads(quoted) if found else None
    except orjson.JSONDecodeError:
        return {}
    inner = body.get("error", body) if isinstance(body, dict) else None
    return inner if isinstance(inner, dict) and "message" in inner else {}
