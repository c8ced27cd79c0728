"""JSON on the wire: reading and validating request bodies, writing answers.

What one request may make the event loop do is bounded before anything expensive runs: the
body is read in chunks and refused as soon as it passes ``max_body_bytes``; its arrays and
objects are counted and their nesting measured on the raw bytes before parsing (orjson's
parse holds the GIL however it is called, so what it is given must be bounded first); route
limits (``Limits``, such as the chat route's message count) run on the parsed body before
the model; and a body over ``OFF_LOOP_BYTES`` is decoded in a worker thread, so the loop
runs between those steps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from itertools import accumulate
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from proxy.errors import BodyTooLarge, InvalidRequest, UnsupportedMediaType

ModelT = TypeVar("ModelT", bound=BaseModel)
ResultT = TypeVar("ResultT")
Limits = Callable[[dict[str, Any]], None]
"""A route's cheap checks of the parsed body (raising ``InvalidRequest``), run before
validation, so the model never sees more than they allow."""

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
    """``raw`` as a JSON object within the limits: at most ``MAX_JSON_CONTAINERS`` brackets
    and ``MAX_JSON_DEPTH`` levels (both checked before parsing), then ``limits`` (if given);
    else ``InvalidRequest``."""
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_CONTAINERS:
        raise InvalidRequest(
            f"Request body holds more than {MAX_JSON_CONTAINERS} arrays and objects",
            code="invalid_json",
        )
    if _depth(raw) > MAX_JSON_DEPTH:
        raise InvalidRequest(
            f"Request body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels",
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
    return data


_NOT_MARKS = bytes(byte for byte in range(256) if byte not in b'[]{}"')
_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1


def _depth(raw: bytes) -> int:
    """How deep the JSON text ``raw`` nests arrays and objects, read from its bytes.

    Hand-written because no JSON library measures nesting without building the objects, and
    walking those in Python took 290 ms for a 4 MB body of 2M numbers; these are a few passes
    of bytes methods (about 15 ms for the same body). Escaped backslashes, then escaped
    quotes, are removed (left to right, as a parser pairs them), so every quote left opens
    or closes a string; only brackets and quotes are kept; adjacent quotes are dropped in
    pairs (a string with no bracket in it, or the end of one string and the start of the
    next with only ``:`` or ``,`` between: either way no bracket leaves or joins a string);
    the brackets outside the remaining strings are summed, ``[{`` up and ``]}`` down. The
    bracket limit bounds the strings that remain. For invalid JSON the number means nothing
    and the parser refuses the body anyway.
    """
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    marks = unescaped.translate(None, _NOT_MARKS).replace(b'""', b"")
    outside = b"".join(marks.split(b'"')[::2]) if b'"' in marks else marks
    return max(accumulate(map(_STEP.__getitem__, outside)), default=0)


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
