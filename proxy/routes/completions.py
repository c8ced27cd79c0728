"""``POST /v1/completions``: legacy text completions, JSON or server-sent events, cached on
the chat path's rules (``proxy.text_completions``)."""

from __future__ import annotations

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from proxy import deps
from proxy.directives import DIRECTIVE_HEADERS
from proxy.openapi import json_body
from proxy.routes.chat import serve, write
from proxy.schemas import TextCompletionRequest
from proxy.text_completions import (
    TextCalls,
    bypass_reason,
    chat_body,
    text_chunk,
    text_completion,
)
from proxy.wire import read_valid

router = APIRouter(tags=["completions"])


@router.post(
    "/v1/completions",
    openapi_extra={**json_body(TextCompletionRequest), "parameters": DIRECTIVE_HEADERS},
    responses={200: {"content": {"application/json": {}, "text/event-stream": {}}}},
)
async def completions(
    request: Request,
    principal: deps.ClientDep,
    settings: deps.SettingsDep,
    service: deps.ChatDep,
) -> Response:
    """Create a text completion."""
    body, _ = await read_valid(request, TextCompletionRequest, settings.max_body_bytes)
    served = await serve(
        request,
        chat_body(body),
        principal,
        service,
        calls=TextCalls(service.calls, body),
        bypass=bypass_reason(body),
    )
    return write(served, _text_json, text_chunk)


def _text_json(chat: bytes) -> bytes:
    return orjson.dumps(text_completion(orjson.loads(chat)))
