"""JSON on the wire: reading and validating request bodies, writing answers."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from proxy.errors import BodyTooLarge, InvalidRequest, UnsupportedMediaType

ModelT = TypeVar("ModelT", bound=BaseModel)

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects a request body may have. orjson parses up to 1024
levels, but re-encoding such a body (litellm, the upstream) overflows Python's stack; no
OpenAI request (tool and response-format schemas included) comes near 64."""


async def read_json(request: Request, max_bytes: int) -> dict[str, Any]:
    """The request's JSON object, read at most ``max_bytes`` deep into the stream."""
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
    try:
        data = orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"Request body is not valid JSON: {exc}", code="invalid_json"
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequest("Request body must be a JSON object", code="invalid_json")
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
