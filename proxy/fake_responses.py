"""The fake upstream's ``/v1/responses`` (OpenAI's Responses API), for the requests the
gateway passes through: those that depend on the upstream's stored state.

The answer is the chat route's (``proxy.fake_replies.make_answer``) over the input as
messages (``instructions`` first), so a test can tell what the upstream saw; a
``previous_response_id`` or ``conversation`` is echoed back, nothing is really stored. JSON,
or Responses server-sent events (``stream: true``); the fault models (``error-<status>``...)
fail as on the chat route, and ``truncate`` drops a stream's connection halfway.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from proxy.fake_replies import count_tokens, error_reply, json_reply, make_answer, text_of

Body = Callable[[Request], Awaitable[dict[str, Any] | Response]]
Fault = Callable[[str], Response | None]


def input_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's ``instructions`` and ``input`` as chat-like messages (role, content)."""
    messages: list[dict[str, Any]] = []
    if isinstance(body.get("instructions"), str):
        messages.append({"role": "system", "content": body["instructions"]})
    raw = body.get("input")
    if isinstance(raw, str):
        return [*messages, {"role": "user", "content": raw}]
    for item in raw if isinstance(raw, list) else ():
        if isinstance(item, dict) and "role" in item:
            messages.append({"role": item["role"], "content": text_of(item.get("content"))})
    return messages


def response_object(body: dict[str, Any], text: str, status: str) -> dict[str, Any]:
    """A Responses API ``response`` object answering ``text``."""
    digest = hashlib.sha256(text.encode()).hexdigest()[:20]
    messages = input_messages(body)
    prompt_tokens = sum(count_tokens(text_of(m["content"])) for m in messages)
    output = [
        {
            "type": "message",
            "id": f"msg_fake{digest}",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }
    ]
    return {
        "id": f"resp_fake{digest}",
        "object": "response",
        "created_at": int(time.time()),
        "model": body["model"],
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "metadata": body.get("metadata") or {},
        "output": output if status == "completed" else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "previous_response_id": body.get("previous_response_id"),
        "store": body.get("store", True),
        "usage": {
            "input_tokens": prompt_tokens,
            "output_tokens": count_tokens(text) if status == "completed" else 0,
            "total_tokens": prompt_tokens + (count_tokens(text) if status == "completed" else 0),
        },
    }


def responses_handler(body_of: Body, fault_of: Fault) -> Callable[[Request], Awaitable[Response]]:
    """The route, over the fake's own body reading (which counts requests) and faults."""

    async def responses(request: Request) -> Response:
        body = await body_of(request)
        if isinstance(body, Response):
            return body
        if not isinstance(body.get("input"), str | list):
            return error_reply(400, "'input' must be a string or an array")
        text = make_answer(body["model"], input_messages(body))
        fault = fault_of(body["model"])
        if fault is not None:
            return fault
        if body.get("stream") is True:
            events = _events(response_object(body, text, "completed"), text, body["model"])
            return StreamingResponse(events, media_type="text/event-stream")
        status = "queued" if body.get("background") is True else "completed"
        return json_reply(response_object(body, text, status))

    return responses


async def _events(done: dict[str, Any], text: str, model: str) -> AsyncIterator[bytes]:
    """The Responses API's event stream for ``done``, one text delta per word; ``truncate``
    breaks it off halfway."""
    item = done["output"][0]
    start = {**done, "status": "in_progress", "output": [], "usage": None}
    where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
    part = {"type": "output_text", "text": "", "annotations": []}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": start},
        {"type": "response.in_progress", "response": start},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {**item, "status": "in_progress", "content": []},
        },
        {"type": "response.content_part.added", **where, "part": part},
    ]
    words = text.split(" ")
    events += [
        {"type": "response.output_text.delta", **where, "delta": w if i == 0 else " " + w}
        for i, w in enumerate(words)
    ]
    events += [
        {"type": "response.output_text.done", **where, "text": text},
        {"type": "response.content_part.done", **where, "part": {**part, "text": text}},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": done},
    ]
    for number, event in enumerate(events):
        if model == "truncate" and number == len(events) // 2:
            raise ConnectionAbortedError("simulated truncated stream")
        data = orjson.dumps({**event, "sequence_number": number})
        yield b"event: " + event["type"].encode() + b"\ndata: " + data + b"\n\n"
