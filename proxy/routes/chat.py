"""``POST /v1/chat/completions``: JSON or server-sent events, as OpenAI answers, with the
cache's ``x-vetcache-*`` headers."""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from fastapi import APIRouter
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from proxy import deps
from proxy.chat_service import CacheReport, Directives
from proxy.errors import GatewayError, InvalidRequest
from proxy.metrics import RequestOutcome
from proxy.openapi import json_body
from proxy.schemas import ChatCompletionRequest
from proxy.settings import Settings
from proxy.tracing import request_span
from proxy.wire import read_json, validate

log = logging.getLogger("vetcache.chat")
router = APIRouter(tags=["chat"])

_OUTCOMES: dict[str, RequestOutcome] = {
    "hit": "hit",
    "miss": "miss",
    "error": "miss",
    "bypass": "bypass",
}
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
DONE = b"data: [DONE]\n\n"
NAMESPACE = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""A namespace, whole (``fullmatch``: ``$`` would let a trailing newline through)."""
DECIMAL = re.compile(r"[+-]?(?:[0-9]{1,20}(?:\.[0-9]{0,20})?|\.[0-9]{1,20})")
"""A plain decimal number as ``x-vetcache-threshold`` takes it: no exponent, ``nan``, ``inf``,
underscores, non-ASCII digits or whitespace, all of which ``float()`` would accept."""
DIRECTIVE_HEADERS: list[dict[str, Any]] = [
    {
        "name": "x-vetcache-namespace",
        "in": "header",
        "description": "Cache namespace (default ``default``)",
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
    },
    {
        "name": "x-vetcache-threshold",
        "in": "header",
        "description": "Minimum similarity for a hit on this request, a plain decimal from "
        "-1 to 1 (only raises the namespace's, unless ``x-vetcache-admin-key`` is the admin key)",
        "schema": {"type": "string", "pattern": f"^{DECIMAL.pattern}$"},
    },
    {
        "name": "x-vetcache-admin-key",
        "in": "header",
        "description": "The admin key, to let ``x-vetcache-threshold`` loosen the threshold",
        "schema": {"type": "string"},
    },
    {
        "name": "cache-control",
        "in": "header",
        "description": "``no-cache``: skip the lookup; ``no-store``: do not admit the answer",
        "schema": {"type": "string"},
    },
]
"""The headers ``directives`` reads, for the OpenAPI document."""


async def sse(
    chunks: AsyncIterator[dict[str, Any]],
    request_id: str,
    finished: Callable[[bool], None] | None = None,
) -> AsyncIterator[bytes]:
    """OpenAI's event stream: one ``data:`` event per chunk, then ``data: [DONE]``.

    An upstream failure mid-stream is sent as a final ``data: {"error": ...}`` event without
    ``[DONE]``, as OpenAI does, since the status line has already gone out. ``finished`` is
    told whether the stream failed once it ends.
    """
    failed = True
    try:
        async for chunk in chunks:
            yield b"data: " + orjson.dumps(chunk) + b"\n\n"
        failed = False
    except GatewayError as exc:
        log.warning("stream failed request_id=%s status=%d", request_id, exc.status_code)
        yield b"data: " + orjson.dumps(exc.body()) + b"\n\n"
        return
    finally:
        if finished is not None:
            finished(failed)
    yield DONE


def directives(request: Request) -> Directives:
    """The cache directives in the request's headers (400 naming the header if invalid)."""
    headers = request.headers
    cache_control = {part.strip().lower() for part in headers.get("cache-control", "").split(",")}
    namespace = headers.get("x-vetcache-namespace", "default")
    if not NAMESPACE.fullmatch(namespace):
        raise InvalidRequest(
            "x-vetcache-namespace must be 1-64 characters of letters, digits and ._-",
            param="x-vetcache-namespace",
        )
    threshold = None
    raw = headers.get("x-vetcache-threshold")
    if raw is not None:
        threshold = float(raw) if DECIMAL.fullmatch(raw) else math.nan
        if not -1.0 <= threshold <= 1.0:
            raise InvalidRequest(
                "x-vetcache-threshold must be a decimal similarity between -1 and 1",
                param="x-vetcache-threshold",
            )
    admin_key = headers.get("x-vetcache-admin-key")
    may_loosen = admin_key is not None and deps.keyring(request).is_admin_key(admin_key)
    return Directives(
        namespace=namespace,
        lookup="no-cache" not in cache_control,
        store="no-store" not in cache_control,
        threshold=threshold,
        may_loosen=may_loosen,
    )


def describe(
    request: Request,
    report: CacheReport,
    body: dict[str, Any],
    namespace: str,
    settings: Settings,
) -> None:
    """What the cache did, on the request's span (tracing on: ``proxy.middleware`` made it)."""
    span = getattr(request.state, "span", None)
    if span is None:
        return
    prompt = None
    if settings.tracing.capture_text:
        last = (body.get("messages") or [{}])[-1]
        prompt = last.get("content") if isinstance(last.get("content"), str) else None
    cache = settings.cache
    request_span(
        span,
        model=str(body.get("model")),
        namespace=namespace,
        outcome=report.outcome,
        similarity=report.similarity,
        threshold=report.threshold,
        entry_id=report.entry_id,
        embedding_model=f"{cache.embedding_model} ({cache.embedding_backend})",
        usage=report.usage,
        prompt=prompt,
    )


def cache_headers(report: CacheReport) -> dict[str, str]:
    """``x-vetcache: hit|miss|bypass|error`` and the numbers behind it."""
    headers: dict[str, str] = {"x-vetcache": report.outcome}
    if report.similarity is not None:
        headers["x-vetcache-similarity"] = f"{report.similarity:.4f}"
    if report.threshold is not None:
        headers["x-vetcache-threshold"] = f"{report.threshold:.4f}"
    if report.entry_id is not None:
        headers["x-vetcache-entry"] = report.entry_id
    if report.age_s is not None:
        headers["x-vetcache-age"] = str(report.age_s)
    if report.shadow_hit:
        headers["x-vetcache-shadow"] = "hit"  # served upstream; the entry would have answered
    return headers


@router.post(
    "/v1/chat/completions",
    openapi_extra={**json_body(ChatCompletionRequest), "parameters": DIRECTIVE_HEADERS},
    responses={200: {"content": {"application/json": {}, "text/event-stream": {}}}},
)
async def chat_completions(
    request: Request,
    principal: deps.ClientDep,
    settings: deps.SettingsDep,
    service: deps.ChatDep,
) -> Response:
    """Create a chat completion."""
    started = time.perf_counter()
    body = await read_json(request, settings.max_body_bytes)
    chat = validate(ChatCompletionRequest, body)
    service.upstream.check_model(chat.model)
    how = directives(request)
    request_id = deps.request_id(request)
    metrics = deps.metrics(request)

    def count(report: CacheReport | None) -> None:
        # A cache failure that fell open went upstream like a miss (and is counted in
        # vetcache_cache_errors_total); "error" is a valid request that failed.
        outcome = "error" if report is None else _OUTCOMES[report.outcome]
        similarity = report.similarity if report is not None else None
        elapsed = time.perf_counter() - started
        metrics.request(how.namespace, chat.model, outcome, elapsed, similarity)

    if not chat.stream:
        if chat.stream_options is not None:
            raise InvalidRequest(
                "'stream_options' is only allowed when 'stream' is true", param="stream_options"
            )
        try:
            payload, report, after = await service.complete(body, principal, how, request_id)
        except GatewayError:
            count(None)
            raise
        count(report)
        if metrics.tracer is not None:
            describe(request, report, body, how.namespace, settings)
        return Response(
            payload,
            media_type="application/json",
            headers=cache_headers(report),
            background=BackgroundTask(after) if after else None,
        )
    try:
        chunks, report, after = await service.stream(body, principal, how, request_id)
    except GatewayError:
        count(None)
        raise
    if metrics.tracer is not None:
        describe(request, report, body, how.namespace, settings)
    return StreamingResponse(
        sse(chunks, request_id, lambda failed: count(None if failed else report)),
        media_type="text/event-stream",
        headers={**SSE_HEADERS, **cache_headers(report)},
        background=BackgroundTask(after) if after else None,
    )
