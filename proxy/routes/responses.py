"""``POST /v1/responses`` (OpenAI's Responses API): JSON or its server-sent events, with the
cache's ``x-vetcache-*`` headers.

A stateless request is translated to the chat completion that asks the same
(``proxy.responses_wire``) and answered by the chat path (``proxy.routes.chat.serve``:
cached, looked up, admitted as any chat request), its answer translated back. A request
that depends on the upstream's stored state goes to the upstream's own Responses API,
uncached (``proxy.responses_passthrough``): ``x-vetcache: bypass``,
``x-vetcache-bypass: stateful``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from fastapi import APIRouter
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from cache import Outcome
from proxy import deps
from proxy.auth import Principal
from proxy.chat_service import ChatService
from proxy.directives import DIRECTIVE_HEADERS, directives
from proxy.errors import GatewayError
from proxy.event_stream import EventStreamResponse
from proxy.openapi import json_body
from proxy.report import CacheReport, headers
from proxy.responses_passthrough import pass_through
from proxy.responses_schemas import ResponsesRequest, responses_limits
from proxy.responses_wire import events, to_chat, to_response
from proxy.routes.chat import FAILED, SSE_HEADERS, Finish, Served, finisher, serve
from proxy.wire import read_valid

log = logging.getLogger("vetcache.responses")
router = APIRouter(tags=["responses"])

STATEFUL = CacheReport(outcome=Outcome.BYPASS, bypass="stateful")
"""The report of a request passed through to the upstream's Responses API."""
Events = AsyncIterator[dict[str, Any]]


@router.post(
    "/v1/responses",
    openapi_extra={**json_body(ResponsesRequest), "parameters": DIRECTIVE_HEADERS},
    responses={200: {"content": {"application/json": {}, "text/event-stream": {}}}},
)
async def responses(
    request: Request,
    principal: deps.ClientDep,
    settings: deps.SettingsDep,
    service: deps.ChatDep,
) -> Response:
    """Create a model response."""
    body, valid = await read_valid(
        request, ResponsesRequest, settings.max_body_bytes, responses_limits
    )
    service.upstream.check_model(valid.model)
    if valid.stateful:
        return await _stateful(request, body, principal, service)
    served = await serve(request, to_chat(body), principal, service)
    return _write(body, served)


def _write(body: dict[str, Any], served: Served) -> Response:
    """The chat answer as the Responses API's JSON, or its events."""
    report, answer = served.reply.report, served.reply.answer.body
    if isinstance(answer, bytes):
        try:
            payload = orjson.dumps(to_response(body, answer))
        except BaseException:
            served.finish(FAILED)
            raise
        served.finish(report)
        return _json(payload, report, served.background)
    return _stream(
        events(body, answer), report, served.finish, served.request_id, served.background
    )


async def _stateful(
    request: Request, body: dict[str, Any], principal: Principal, service: ChatService
) -> Response:
    """The upstream's own Responses API answers, uncached; counted as a bypass."""
    how = directives(request, deps.keyring(request))
    finish = finisher(request, body["model"], how.namespace, principal.tenant)
    try:
        answer = await pass_through(service.upstream, body)
    except GatewayError:
        finish(FAILED)
        raise
    if isinstance(answer, dict):
        finish(STATEFUL)
        return _json(orjson.dumps(answer), STATEFUL, None)
    return _stream(answer, STATEFUL, finish, deps.request_id(request), None)


def _json(payload: bytes, report: CacheReport, background: BackgroundTask | None) -> Response:
    return Response(
        payload, media_type="application/json", headers=headers(report), background=background
    )


def _stream(
    answer: Events,
    report: CacheReport,
    finish: Finish,
    request_id: str,
    background: BackgroundTask | None,
) -> Response:
    return EventStreamResponse(
        sse(answer, request_id, lambda failed: finish(FAILED if failed else report)),
        media_type="text/event-stream",
        headers={**SSE_HEADERS, **headers(report)},
        background=background,
    )


def _event(event: dict[str, Any]) -> bytes:
    """One server-sent event, named by its type, as OpenAI sends them."""
    return (
        b"event: " + str(event.get("type")).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
    )


async def sse(
    answer: Events, request_id: str, finished: Callable[[bool], None]
) -> AsyncIterator[bytes]:
    """The Responses API's event stream. A failure mid-stream ends it as OpenAI does, the
    status line having gone out: an ``error`` event, then ``response.failed`` (the response
    as last seen, its ``error`` set). ``finished`` is told whether the stream failed."""
    failed = True
    response: dict[str, Any] | None = None
    number = 0
    try:
        async for event in answer:
            response = event.get("response", response)
            number = int(event.get("sequence_number", number)) + 1
            yield _event(event)
        failed = False
    except GatewayError as exc:
        log.warning("stream failed request_id=%s status=%d", request_id, exc.status_code)
        for event in failure_events(exc, response, number):
            yield _event(event)
    finally:
        finished(failed)


def failure_events(
    exc: GatewayError, response: dict[str, Any] | None, number: int
) -> list[dict[str, Any]]:
    """The events that end a stream broken off by ``exc``, numbered from ``number``."""
    code = exc.code or exc.kind
    found: list[dict[str, Any]] = [
        {
            "type": "error",
            "code": code,
            "message": exc.message,
            "param": exc.param,
            "sequence_number": number,
        }
    ]
    if response is not None:
        failed = {**response, "status": "failed", "error": {"code": code, "message": exc.message}}
        found.append({"type": "response.failed", "response": failed, "sequence_number": number + 1})
    return found
