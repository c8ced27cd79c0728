"""``GET /``: where to go from here (a browser or ``curl`` pointed at the gateway's base)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from proxy import __version__
from proxy.deps import SettingsDep
from proxy.wire import json_response

router = APIRouter(tags=["health"])


@router.get("/")
async def index(settings: SettingsDep) -> Response:
    """The gateway's name and version, and the paths to start from: the API reference
    (``/docs``, ``/openapi.json``; null with ``api_docs: false``), the review page (``/ui``),
    health and metrics."""
    docs = settings.api_docs
    return json_response(
        {
            "name": "vetcache",
            "version": __version__,
            "api": "/v1 (OpenAI-compatible: point an OpenAI client's base URL here)",
            "docs": "/docs" if docs else None,
            "openapi": "/openapi.json" if docs else None,
            "ui": "/ui",
            "health": "/healthz",
            "metrics": "/metrics",
        }
    )
