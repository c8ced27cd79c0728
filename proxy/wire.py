"""JSON on the wire: reading and validating request bodies, writing answers.

What one request may make the event loop do is bounded before anything expensive runs: the
body is read in chunks and refused as soon as it passes ``max_body_bytes``; its arrays and
objects are counted on the raw bytes before parsing; route limits (``Limits``, such as the
chat route's message count) run on the parsed body before the depth walk and the model; and
a body over ``OFF_LOOP_BYTES`` is decoded in a worker thread, so the Python-level work on it
lets the loop run in between (orjson's parse itself holds the GIL, which is why the count
before it matters).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from proxy.errors import BodyTooLarge, InvalidRequest, UnsupportedMediaType

ModelT = TypeVar("ModelT", bound=BaseModel)
ResultT = TypeVar("ResultT")
Limits = Callable[[dict[str, Any]], None]
"""A route's cheap checks of the parsed body (raising ``InvalidRequest``), run before the
depth walk and validation, so neither ever sees more than they allow."""

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects a request body may have. orjson parses up to 1024
levels, but re-encoding such a body (litellm, the upstream) overflows Python's stack; no
OpenAI request (tool and response-format schemas included) comes near 64."""
MAX_JSON_CONTAINERS = 100_000
"""Most ``[`` and ``{`` bytes a request body may hold, counted on the raw bytes before it is
parsed (inside strings too: an upper bound of its arrays and objects). orjson spends about
200 ns of held GIL per empty array: 4 MB of them parsed in 270 ms here, this many in 20 ms.
4096 messages of a few content parts each, with tool schemas, stay far below."""
OFF_LOOP_BYTES = 64 * 1024
"""Bodies larger than this are decoded (parsed, checked, validated) in a worker thread."""


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw JSON body, read at most ``max_bytes`` deep into the stream."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        raise UnsupportedMediaType("Content-Type must be application/json")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge(f"Request body exceeds the limit of {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge(f"Request body exceeds the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(
    request: Request, max_bytes: int, limits: Limits | None = None
) -> dict[str, Any]:
    """The request's JSON object (see ``decode``)."""
    raw = await read_body(request, max_bytes)
    return await _decoded(raw, lambda: decode(raw, limits))


async def read_valid(
    request: Request, model: type[ModelT], max_bytes: int, limits: Limits | None = None
) -> tuple[dict[str, Any], ModelT]:
    """The request's JSON object and the same validated as ``model``."""
    raw = await read_body(request, max_bytes)

    def work() -> tuple[dict[str, Any], ModelT]:
        data = decode(raw, limits)
        return data, validate(model, data)

    return await _decoded(raw, work)


async def _decoded(raw: bytes, work: Callable[[], ResultT]) -> ResultT:
    """``work()``: here for a small body, in a worker thread for a large one. A refusal's
    traceback is dropped in the thread, so the parsed body it references is freed there too
    (freeing 100k objects is milliseconds of its own)."""
    if len(raw) <= OFF_LOOP_BYTES:
        return work()

    def guarded() -> ResultT | InvalidRequest:
        try:
            return work()
        except InvalidRequest as exc:
            exc.__context__ = None  # a ValidationError's frames hold the body too
            return exc.with_traceback(None)

    result = await asyncio.to_thread(guarded)
    if isinstance(result, InvalidRequest):
        raise result
    return result


def decode(raw: bytes, limits: Limits | None = None) -> dict[str, Any]:
    """``raw`` as a JSON object within the limits: at most ``MAX_JSON_CONTAINERS`` brackets,
    ``limits`` (if given), at most ``MAX_JSON_DEPTH`` levels; else ``InvalidRequest``."""
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_CONTAINERS:
        raise InvalidRequest(
            f"Request body holds more than {MAX_JSON_CONTAINERS} arrays and objects",
            code="invalid_json",
        )
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"Request body is not valid JSON: {exc}", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequest("Request body must be a JSON object", code="invalid_json")
    if limits is not None:
        limits(data)
    if _too_deep(data, MAX_JSON_DEPTH):
        raise InvalidRequest(
            f"Request body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels",
            code="invalid_json",
        )
    return data


def _too_deep(data: dict[str, Any], limit: int) -> bool:
    """Whether ``data`` nests containers more than ``limit`` levels (walked without
    recursion, so the check itself cannot overflow the stack)."""
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def validate(model: type[ModelT], data: dict[str, Any]) -> ModelT:
    """``data`` as ``model``, or ``InvalidRequest`` naming the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        param = ".".join(str(part) for part in error["loc"]) or None
        message = error["msg"].removeprefix("Value error, ")
        where = f"'{param}': " if param else ""
        raise InvalidRequest(f"Invalid {where}{message}", param=param) from None


def json_response(payload: dict[str, object], status: int = 200) -> Response:
    """A JSON answer, encoded with orjson."""
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")
