"""``GET /``: where to go from here (a browser or ``curl`` pointed at the gateway's base)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from proxy import __version__
from proxy.wire import json_response

router = APIRouter(tags=["health"])


@router.get("/")
async def index() -> Response:
    """The gateway's name and version, and the paths to start from: the API reference
    (``/docs``, ``/openapi.json``), the review page (``/ui``), health and metrics."""
    return json_response(
        {
            "name": "vetcache",
            "version": __version__,
            "api": "/v1 (OpenAI-compatible: point an OpenAI client's base URL here)",
            "docs": "/docs",
            "openapi": "/openapi.json",
            "ui": "/ui",
            "health": "/healthz",
            "metrics": "/metrics",
        }
    )
