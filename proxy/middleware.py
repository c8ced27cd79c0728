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
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from proxy.errors import GatewayError, body_for
from proxy.logs import REQUEST_ID, TIMINGS
from proxy.report import STATE
from proxy.tracing import Tracing

log = logging.getLogger("vetcache.access")
errors_log = logging.getLogger("vetcache.errors")

REQUEST_ID_HEADER = b"x-request-id"
_VALID_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")


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

    def __init__(
        self, app: ASGIApp, access_log: bool = True, tracing: Tracing | None = None
    ) -> None:
        self.app = app
        self.access_log = access_log
        self.tracing = tracing or Tracing.off()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_id(scope) or uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["started"] = time.perf_counter()  # request latency counts from here
        # The gateway span (tracing on): the caller's trace continues through it.
        with self.tracing.server(
            scope["method"], scope["path"], scope["headers"], request_id
        ) as span:
            state["span"] = span  # for the route's attributes (cache outcome, ...)
            status = await self._handle(scope, receive, send, request_id)
            self.tracing.status(span, status)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> int:
        """Run the app; the response status."""
        id_header = (REQUEST_ID_HEADER, request_id.encode())
        status = 0
        started: float = scope["state"]["started"]
        timings: dict[str, float] = {}
        id_token, timings_token = REQUEST_ID.set(request_id), TIMINGS.set(timings)

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:  # noqa: BLE001 - the process boundary: logged, counted in the access line, answered
            errors_log.exception("unhandled error request_id=%s", request_id)
            if status == 0:
                body = orjson.dumps(body_for(GatewayError("Internal error"), scope["path"]))
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
                report = scope["state"].get(STATE)  # chat requests: what the cache did
                outcome = report.outcome.value if report is not None else None
                duration_ms = round((time.perf_counter() - started) * 1000, 3)
                fields = {
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status or 500,
                    "duration_ms": duration_ms,
                    "outcome": outcome,  # hit, miss, bypass, fail_open, error (chat only)
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
