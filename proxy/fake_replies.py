"""The fake upstream's building blocks shared by its routes (``proxy.fake_upstream``): the
deterministic answer, error bodies, and a chat answer as OpenAI's JSON or chunks."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import orjson
from starlette.responses import Response

JSON = "application/json"


def json_reply(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type=JSON)


def error_reply(status: int, message: str, code: str | None = None) -> Response:
    kind = "rate_limit_error" if status == 429 else "invalid_request_error"
    if status >= 500:
        kind = "server_error"
    return json_reply(
        {"error": {"message": message, "type": kind, "param": None, "code": code}}, status
    )


def text_of(content: Any) -> str:
    """The plain text of a message's content (string or list of content parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def make_answer(model: str, messages: Sequence[Mapping[str, Any]]) -> str:
    """The deterministic answer for ``messages``: same request, same answer."""
    digest = hashlib.sha256(orjson.dumps(messages, option=orjson.OPT_SORT_KEYS)).hexdigest()[:8]
    last_user = next(
        (text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
    )
    return f"[{model}] reply {digest}: {last_user[:200]}"


def count_tokens(text: str) -> int:
    return len(text.split())


def odd_answer(model: str, text: str, finish: str) -> tuple[dict[str, Any], str | None]:
    """The message and finish reason a model name asks for (see the module's docstring)."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if model == "finish-null":
        return message, None
    if model == "refusal":
        return {"role": "assistant", "content": None, "refusal": "I can't help with that."}, finish
    if model == "empty":
        return {"role": "assistant", "content": ""}, finish
    if model == "tool-call":
        call = {"id": "call_fake1", "type": "function", "function": {"name": "lookup",
                "arguments": orjson.dumps({"q": text}).decode()}}  # fmt: skip
        return {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
    if model == "function-call":
        call = {"name": "lookup", "arguments": '{"q": "x"}'}
        return {"role": "assistant", "content": None, "function_call": call}, finish
    return message, finish


async def chat_stream(
    completion_id: str,
    model: str,
    message: dict[str, Any],
    finish: str | None,
    usage: dict[str, int] | None,
) -> AsyncIterator[bytes]:
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish_reason: str | None) -> bytes:
        payload = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        return b"data: " + orjson.dumps(payload) + b"\n\n"

    yield chunk({"role": "assistant", "content": ""}, None)
    words = (message.get("content") or "").split(" ") if message.get("content") else []
    cut = len(words) // 2 if model == "truncate" else len(words)
    pause = int(model.removeprefix("slow-stream-")) / 1000 if model.startswith("slow-") else 0.0
    for i, word in enumerate(words[:cut]):
        if pause and i:
            await asyncio.sleep(pause)
        yield chunk({"content": word if i == 0 else " " + word}, None)
    for field in ("refusal", "function_call"):
        if message.get(field) is not None:
            yield chunk({field: message[field]}, None)
    for index, call in enumerate(message.get("tool_calls") or ()):
        yield chunk({"tool_calls": [{"index": index, **call}]}, None)
    if model == "truncate":
        raise ConnectionAbortedError("simulated truncated stream")
    yield chunk({}, finish)
    if usage is not None:
        final = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": usage,
        }
        yield b"data: " + orjson.dumps(final) + b"\n\n"
    yield b"data: [DONE]\n\n"
