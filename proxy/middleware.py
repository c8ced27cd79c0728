"""The outermost layer of every request: request id, trace span (when tracing is on), access
log, last-resort error boundary.

Written as plain ASGI rather than ``BaseHTTPMiddleware``, which would buffer streamed answers
and cost a task per request on the hot path.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

import orjson
from opentelemetry.trace import SpanKind, StatusCode, Tracer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from proxy.errors import GatewayError
from proxy.logs import REQUEST_ID, TIMINGS
from proxy.tracing import incoming

log = logging.getLogger("vetcache.access")
errors_log = logging.getLogger("vetcache.errors")

REQUEST_ID_HEADER = b"x-request-id"
_VALID_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
TRACED_PREFIXES = ("/v1/", "/admin/", "/healthz", "/readyz", "/metrics")
"""Paths named in span names as they are (any other path: the method only, so a scan of
random URLs cannot mint span names without bound)."""


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            # fullmatch: with match, ``$`` lets a trailing newline through into the echo
            return value.decode() if _VALID_ID.fullmatch(value) else None
    return None


class RequestContext:
    """Assigns ``request.state.request_id`` (the client's ``x-request-id`` when it is a sane
    token, else a new one), echoes it on every response, logs one access line per request
    (request id, status, duration, cache outcome, stage timings; never bodies), and answers
    OpenAI-style 500 for any exception nothing else handled."""

    def __init__(self, app: ASGIApp, access_log: bool = True, tracer: Tracer | None = None) -> None:
        self.app = app
        self.access_log = access_log
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        if self.tracer is None:
            await self._handle(scope, receive, send, request_id)
            return
        # The gateway span: the caller's trace continues through it (W3C traceparent).
        method, path = scope["method"], scope["path"]
        with self.tracer.start_as_current_span(
            f"{method} {path}" if path.startswith(TRACED_PREFIXES) else method,
            context=incoming(scope["headers"]),
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "url.path": path,
                "vetcache.request_id": request_id,
            },
        ) as span:
            scope["state"]["span"] = span  # for the route's attributes (cache outcome, ...)
            status = await self._handle(scope, receive, send, request_id)
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(StatusCode.ERROR)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> int:
        """Run the app; the response status."""
        id_header = (REQUEST_ID_HEADER, request_id.encode())
        status = 0
        outcome: str | None = None
        started = time.perf_counter()
        timings: dict[str, float] = {}
        id_token, timings_token = REQUEST_ID.set(request_id), TIMINGS.set(timings)

        async def send_with_id(message: Message) -> None:
            nonlocal status, outcome
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers", ())
                outcome = next((v.decode() for k, v in headers if k == b"x-vetcache"), None)
                message["headers"] = [*headers, id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:  # noqa: BLE001 - the process boundary: logged, counted in the access line, answered
            errors_log.exception("unhandled error request_id=%s", request_id)
            if status == 0:
                body = orjson.dumps(GatewayError("Internal error").body())
                await send_with_id(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
        finally:
            if self.access_log:
                duration_ms = round((time.perf_counter() - started) * 1000, 3)
                fields = {
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status or 500,
                    "duration_ms": duration_ms,
                    "outcome": outcome,  # x-vetcache: hit, miss, bypass, error (chat only)
                    "timings_ms": timings,  # per stage: exact_lookup, embed, upstream, ...
                }
                log.info(
                    "%s %s %d %.1fms %s request_id=%s",
                    scope["method"],
                    scope["path"],
                    status or 500,
                    duration_ms,
                    outcome or "-",
                    request_id,
                    extra=fields,
                )
            REQUEST_ID.reset(id_token)
            TIMINGS.reset(timings_token)
        return status or 500
