"""``POST /v1/chat/completions``: JSON or server-sent events, as OpenAI answers, with the
cache's ``x-vetcache-*`` headers."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from cache import Outcome
from proxy import deps
from proxy.answers import Chunks, Mapped, UpstreamCalls
from proxy.auth import Principal
from proxy.chat_service import ChatService, Reply
from proxy.directives import DIRECTIVE_HEADERS, directives
from proxy.errors import GatewayError, InvalidRequest
from proxy.event_stream import EventStreamResponse
from proxy.openapi import json_body
from proxy.report import STATE, CacheReport, headers
from proxy.schemas import ChatCompletionRequest, chat_limits
from proxy.wire import read_valid

log = logging.getLogger("vetcache.chat")
router = APIRouter(tags=["chat"])

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
DONE = b"data: [DONE]\n\n"
FAILED = CacheReport(outcome=Outcome.ERROR)
"""The report of a request that failed (an error answer, or a stream broken off)."""

Finish = Callable[[CacheReport], None]
"""Told the request's final report when it ends (metrics, the access log)."""


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


@dataclass(frozen=True)
class Served:
    """A chat request answered (from the cache or the upstream), not written yet: what the
    routes of other wire formats (``/v1/responses``, ``/v1/messages``...) translate."""

    reply: Reply[bytes] | Reply[Chunks]
    """The chat answer: chat-completion JSON bytes, or chat-completion chunks."""
    finish: Finish
    """Call with the report once the answer is written (``FAILED`` if it broke off)."""
    request_id: str
    """The request's id."""

    @property
    def background(self) -> BackgroundTask | None:
        """The after-work, for the response's ``background``."""
        return BackgroundTask(self.reply.after) if self.reply.after else None


def finisher(request: Request, model: str, namespace: str, tenant: str) -> Finish:
    """What tells a request's final report to the access log (``request.state``) and the
    request metrics, its latency counted from its arrival (``proxy.middleware``)."""
    started = getattr(request.state, "started", None) or time.perf_counter()
    metrics = deps.metrics(request)

    def finish(report: CacheReport) -> None:
        setattr(request.state, STATE, report)  # the access log reads it
        elapsed = time.perf_counter() - started
        metrics.request(namespace, model, report.outcome, elapsed, report.similarity, tenant)

    return finish


async def serve(
    request: Request,
    body: Mapping[str, Any],
    principal: Principal,
    service: ChatService,
    *,
    calls: UpstreamCalls | None = None,
    bypass: str | None = None,
) -> Served:
    """Answer a valid chat-completion ``body`` (already read and validated, whatever wire
    format it came in): directives, key, lookup, policy, the upstream, admission, metrics and
    trace, as for ``/v1/chat/completions``. Errors raise ``GatewayError`` (already counted).
    ``calls`` and ``bypass``: see ``ChatService.complete``."""
    model = str(body["model"])
    service.upstream.check_model(model)
    if not body.get("stream") and body.get("stream_options") is not None:
        raise InvalidRequest(
            "'stream_options' is only allowed when 'stream' is true", param="stream_options"
        )
    how = directives(request, deps.keyring(request))
    request_id = deps.request_id(request)
    finish = finisher(request, model, how.namespace, principal.tenant)
    try:
        reply: Reply[bytes] | Reply[Chunks]
        if body.get("stream"):
            reply = await service.stream(
                body, principal, how, request_id, calls=calls, bypass=bypass
            )
        else:
            reply = await service.complete(
                body, principal, how, request_id, calls=calls, bypass=bypass
            )
    except GatewayError:
        finish(FAILED)
        raise
    service.tracing.chat(
        getattr(request.state, "span", None), body, how.namespace, reply.report, reply.answer.usage
    )
    return Served(reply, finish, request_id)


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
    body, _ = await read_valid(request, ChatCompletionRequest, settings.max_body_bytes, chat_limits)
    return write(await serve(request, body, principal, service))


def write(
    served: Served,
    json: Callable[[bytes], bytes] | None = None,
    chunk: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None,
) -> Response:
    """The HTTP response: the JSON body, or the chunks as OpenAI's server-sent events; a
    route of another OpenAI format translates the ``json`` body or each ``chunk``."""
    reply, finish = served.reply, served.finish
    report, answer = reply.report, reply.answer.body
    if isinstance(answer, bytes):
        finish(report)
        return Response(
            answer if json is None else json(answer),
            media_type="application/json",
            headers=headers(report),
            background=served.background,
        )
    chunks = answer if chunk is None else Mapped(answer, chunk)
    return EventStreamResponse(
        sse(chunks, served.request_id, lambda failed: finish(FAILED if failed else report)),
        media_type="text/event-stream",
        headers={**SSE_HEADERS, **headers(report)},
        background=served.background,
    )
