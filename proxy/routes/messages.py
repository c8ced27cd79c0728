"""``POST /v1/messages``: Anthropic's Messages API, JSON or its server-sent events, answered
through the chat path (``proxy.routes.chat.serve``: the same key, lookup, policy, upstream,
admission and audits), translated at this boundary (``proxy.messages_wire``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from proxy import deps
from proxy.answers import Chunks
from proxy.directives import DIRECTIVE_HEADERS
from proxy.errors import GatewayError, anthropic_body
from proxy.event_stream import EventStreamResponse
from proxy.messages_schema import MessagesRequest
from proxy.messages_wire import ToolNames, frame, to_chat, to_events, to_message
from proxy.openapi import ANTHROPIC_ERRORS, json_body
from proxy.report import headers
from proxy.routes.chat import FAILED, SSE_HEADERS, Served, serve
from proxy.schemas import ChatCompletionRequest, chat_limits
from proxy.wire import read_valid, validate

log = logging.getLogger("vetcache.messages")
router = APIRouter(tags=["messages"])


@router.post(
    "/v1/messages",
    openapi_extra={**json_body(MessagesRequest), "parameters": DIRECTIVE_HEADERS},
    responses={
        **ANTHROPIC_ERRORS,
        200: {"content": {"application/json": {}, "text/event-stream": {}}},
    },
)
async def messages(
    request: Request,
    principal: deps.ClientDep,
    settings: deps.SettingsDep,
    service: deps.ChatDep,
) -> Response:
    """Create a message (Anthropic's Messages API), through the cache."""
    body, valid = await read_valid(request, MessagesRequest, settings.max_body_bytes, chat_limits)
    service.upstream.check_model(valid.model)
    chat, names = to_chat(body)
    validate(ChatCompletionRequest, chat)  # what the chat path needs, whatever was dropped
    return _write(await serve(request, chat, principal, service), valid.model, names)


def _write(served: Served, model: str, names: ToolNames) -> Response:
    """The HTTP response: an Anthropic message, or its events."""
    reply, finish = served.reply, served.finish
    report, answer = reply.report, reply.answer.body
    if isinstance(answer, bytes):
        message = to_message(answer, model, names)
        finish(report)
        return Response(
            orjson.dumps(message),
            media_type="application/json",
            headers=headers(report),
            background=served.background,
        )
    return EventStreamResponse(
        _sse(
            answer,
            model,
            names,
            served.request_id,
            lambda failed: finish(FAILED if failed else report),
        ),
        media_type="text/event-stream",
        headers={**SSE_HEADERS, **headers(report)},
        background=served.background,
    )


async def _sse(
    chunks: Chunks,
    model: str,
    names: ToolNames,
    request_id: str,
    finished: Callable[[bool], None],
) -> AsyncIterator[bytes]:
    """Anthropic's event stream for the chat chunks. A failure after the status line has
    gone out ends it with one ``event: error``, as Anthropic does; ``finished`` is told
    whether the stream failed once it ends."""
    failed = True
    try:
        async with aclosing(to_events(chunks, model, names)) as events:
            async for event in events:
                yield frame(event)
        failed = False
    except GatewayError as exc:
        log.warning("stream failed request_id=%s status=%d", request_id, exc.status_code)
        yield frame(anthropic_body(exc))
    finally:
        finished(failed)
