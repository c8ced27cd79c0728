"""What ``/openapi.json`` says beyond what FastAPI infers from the route signatures.

Routes read their JSON bodies themselves (``proxy.wire.read_json``: media type, size limit,
OpenAI-style errors), so FastAPI sees no body parameter: ``json_body(Model)`` documents one.
Every error is OpenAI's ``{"error": {...}}`` (Anthropic's ``{"type": "error", "error": {...}}``
on its routes) with a 4xx or 5xx status, never FastAPI's 422
``{"detail": [...]}``: routers declare ``ERRORS``, and ``install`` drops the 422 FastAPI adds
to every route that has parameters. Documentation only: nothing here changes what a route
accepts or answers.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel


class ErrorDetail(BaseModel):
    """The error, as OpenAI sends it."""

    message: str
    """What went wrong, for a person."""
    type: str
    """``invalid_request_error``, ``authentication_error``, ``upstream_error``..."""
    param: str | None
    """The request field or header at fault, if one is."""
    code: str | None
    """A stable machine-readable code (``model_not_found``, ``body_too_large``...)."""


class ErrorBody(BaseModel):
    """Every error response's body."""

    error: ErrorDetail
    """The error."""


class AnthropicErrorDetail(BaseModel):
    """The error, as Anthropic sends it."""

    type: str
    """``invalid_request_error``, ``authentication_error``, ``not_found_error``..."""
    message: str
    """What went wrong, for a person."""


class AnthropicErrorBody(BaseModel):
    """Every error response's body on Anthropic's routes (``/v1/messages``)."""

    type: str
    """Always ``error``."""
    error: AnthropicErrorDetail
    """The error."""


ERRORS: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorBody, "description": "The request was refused"},
    "5XX": {"model": ErrorBody, "description": "The gateway or the upstream failed"},
}
"""``responses=`` for every router."""
ANTHROPIC_ERRORS: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": AnthropicErrorBody, "description": "The request was refused"},
    "5XX": {"model": AnthropicErrorBody, "description": "The gateway or the upstream failed"},
}
"""``responses=`` of Anthropic's routes (``proxy.errors.ANTHROPIC_ROUTES``)."""


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` declaring ``model`` as the operation's required JSON body, its
    ``$defs`` inlined (a fragment's local references would not resolve in the document)."""
    schema = model.model_json_schema()
    definitions: dict[str, Any] = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                rest = {key: value for key, value in node.items() if key != "$ref"}
                return inline({**definitions[ref.removeprefix("#/$defs/")], **rest})
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": inline(schema)}},
        }
    }


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` leave out the 422 responses no route ever sends."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()  # cached by FastAPI after the first call; the edit is idempotent
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        components = schema.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
