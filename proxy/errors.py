"""The proxy package's errors and their one translation to OpenAI-style error JSON.

    GatewayError                     500 server_error
    ├── InvalidRequest               400 invalid_request_error
    │   ├── ModelNotFound            404 invalid_request_error / model_not_found
    │   ├── BodyTooLarge             413 invalid_request_error / body_too_large
    │   └── UnsupportedMediaType     415 invalid_request_error / unsupported_media_type
    ├── AuthenticationFailed         401 authentication_error / invalid_api_key
    ├── PermissionDenied             403 permission_error
    ├── CacheDisabled                409 server_error / cache_disabled (a cache route, cache off)
    ├── StoreUnavailable             503 server_error / store_unavailable
    ├── RouteNotFound                404 invalid_request_error / unknown_url
    ├── MethodNotAllowed             405 invalid_request_error / method_not_allowed
    └── UpstreamError                the upstream's own status (429, 5xx, 4xx)
        ├── UpstreamTimeout          504 upstream_error / upstream_timeout
        ├── UpstreamUnreachable      502 upstream_error / upstream_unreachable
        └── UpstreamInvalidReply     502 upstream_error / upstream_invalid_response

Every error body is ``{"error": {"message", "type", "param", "code"}}``, as OpenAI sends;
on Anthropic's routes (``ANTHROPIC_ROUTES``: ``/v1/messages``) it is Anthropic's
``{"type": "error", "error": {"type", "message"}}`` with the same status, the type chosen by
the status (``anthropic_type``). ``body_for`` is the one rule that picks the shape.

    ConfigError                      the configuration is invalid (before any request: the
                                     CLI prints it, one line per bad field, and exits 2)

The cache's and the audit's errors never reach a client as such: the routes turn the ones
that matter into a ``GatewayError`` (e.g. a store that is down: 503 ``store_unavailable``).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

log = logging.getLogger("vetcache.errors")


class GatewayError(Exception):
    """Base of every error the gateway answers with."""

    status: ClassVar[int] = 500
    kind: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.status_code = status if status is not None else self.status

    def body(self) -> dict[str, Any]:
        """The OpenAI-style error object."""
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }


ANTHROPIC_ROUTES = ("/v1/messages",)
"""Paths (and what lies under them) whose errors take Anthropic's shape."""
_ANTHROPIC_TYPES = {
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_type(status: int) -> str:
    """Anthropic's error ``type`` for an HTTP status (its documented table; any other 4xx
    is ``invalid_request_error``, any other 5xx ``api_error``)."""
    return _ANTHROPIC_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")


def anthropic_body(error: GatewayError) -> dict[str, Any]:
    """``error`` as Anthropic's error object."""
    return {
        "type": "error",
        "error": {"type": anthropic_type(error.status_code), "message": error.message},
    }


def body_for(error: GatewayError, path: str) -> dict[str, Any]:
    """The error body a client of ``path`` expects: Anthropic's on its routes, else OpenAI's."""
    if any(path == route or path.startswith(route + "/") for route in ANTHROPIC_ROUTES):
        return anthropic_body(error)
    return error.body()


class InvalidRequest(GatewayError):
    status = 400
    kind = "invalid_request_error"


class ModelNotFound(InvalidRequest):
    status = 404
    default_code = "model_not_found"


class BodyTooLarge(InvalidRequest):
    status = 413
    default_code = "body_too_large"


class UnsupportedMediaType(InvalidRequest):
    status = 415
    default_code = "unsupported_media_type"


class AuthenticationFailed(GatewayError):
    status = 401
    kind = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    kind = "permission_error"
    default_code = "permission_denied"


class CacheDisabled(GatewayError):
    """An admin route that acts on the cache, with the cache off."""

    status = 409
    default_code = "cache_disabled"

    def __init__(self) -> None:
        super().__init__("The cache is disabled")


class StoreUnavailable(GatewayError):
    """The store a route needs (the cache's, the verdicts') is down."""

    status = 503
    default_code = "store_unavailable"

    def __init__(self, store: str = "cache") -> None:
        super().__init__(f"The {store} store is unavailable")


class RouteNotFound(GatewayError):
    status = 404
    kind = "invalid_request_error"
    default_code = "unknown_url"


class MethodNotAllowed(GatewayError):
    status = 405
    kind = "invalid_request_error"
    default_code = "method_not_allowed"


class UpstreamError(GatewayError):
    """The upstream answered with an error; its status is passed through."""

    kind = "upstream_error"


class UpstreamTimeout(UpstreamError):
    status = 504
    default_code = "upstream_timeout"


class UpstreamUnreachable(UpstreamError):
    status = 502
    default_code = "upstream_unreachable"


class UpstreamInvalidReply(UpstreamError):
    """The upstream answered 200 with something that is no completion (an HTML page, JSON
    without ``choices``...); its body is never passed on."""

    status = 502
    default_code = "upstream_invalid_response"


class ConfigError(Exception):
    """The configuration is invalid; ``str()`` names each bad field, one per line."""


def error_response(
    error: GatewayError, headers: dict[str, str] | None = None, path: str = ""
) -> Response:
    """The HTTP response for ``error`` on a request for ``path`` (see ``body_for``)."""
    return Response(
        orjson.dumps(body_for(error, path)),
        status_code=error.status_code,
        media_type="application/json",
        headers=headers,
    )


async def _on_gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    headers = {"www-authenticate": "Bearer"} if isinstance(exc, AuthenticationFailed) else None
    return error_response(exc, headers, request.url.path)


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    error: GatewayError
    if exc.status_code == 404:
        error = RouteNotFound("no such route")
    elif exc.status_code == 405:
        error = MethodNotAllowed("method not allowed on this route")
    else:
        error = GatewayError(str(exc.detail), status=exc.status_code)
    return error_response(error, dict(exc.headers) if exc.headers else None, request.url.path)


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    param = ".".join(str(p) for p in first["loc"] if p not in ("body", "query", "header"))
    error = InvalidRequest(str(first["msg"]), param=param or None)
    return error_response(error, path=request.url.path)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    # The process boundary: anything not translated above is a bug; log it with the
    # request id (never the body) and answer in the same error shape.
    log.error(
        "unhandled error",
        exc_info=exc,
        extra={"request_id": getattr(request.state, "request_id", None)},
    )
    return error_response(GatewayError("internal error"), path=request.url.path)


def install_error_handlers(app: FastAPI) -> None:
    """Route every error the app can raise through one error body (``body_for``)."""
    app.add_exception_handler(GatewayError, _on_gateway_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(Exception, _on_unexpected)
