"""``POST /v1/chat/completions``: JSON or server-sent events, as OpenAI answers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from proxy import deps
from proxy.errors import GatewayError, InvalidRequest
from proxy.schemas import ChatCompletionRequest
from proxy.wire import json_response, read_json, validate

log = logging.getLogger("vetcache.chat")
router = APIRouter(tags=["chat"])

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
DONE = b"data: [DONE]\n\n"


async def sse(chunks: AsyncIterator[dict[str, Any]], request_id: str) -> AsyncIterator[bytes]:
    """OpenAI's event stream: one ``data:`` event per chunk, then ``data: [DONE]``.

    An upstream failure mid-stream is sent as a final ``data: {"error": ...}`` event without
    ``[DONE]``, as OpenAI does, since the status line has already gone out.
    """
    try:
        async for chunk in chunks:
            yield b"data: " + orjson.dumps(chunk) + b"\n\n"
    except GatewayError as exc:
        log.warning("stream failed request_id=%s status=%d", request_id, exc.status_code)
        yield b"data: " + orjson.dumps(exc.body()) + b"\n\n"
        return
    yield DONE


@router.post("/v1/chat/completions")
async def chat_completions(
    request: Request,
    principal: deps.ClientDep,
    settings: deps.SettingsDep,
    upstream: deps.UpstreamDep,
) -> Response:
    """Create a chat completion."""
    body = await read_json(request, settings.max_body_bytes)
    chat = validate(ChatCompletionRequest, body)
    upstream.check_model(chat.model)
    if not chat.stream:
        if chat.stream_options is not None:
            raise InvalidRequest(
                "'stream_options' is only allowed when 'stream' is true", param="stream_options"
            )
        return json_response(await upstream.chat(body))
    chunks = await upstream.chat_stream(body)
    return StreamingResponse(
        sse(chunks, deps.request_id(request)),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )
