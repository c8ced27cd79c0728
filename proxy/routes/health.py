"""Liveness and readiness probes (no auth: orchestrators call them)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from proxy.wire import json_response

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> Response:
    """The process is up and serving HTTP."""
    return json_response({"status": "ok"})


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    """The gateway can answer requests: its resources are open."""
    if getattr(request.app.state, "upstream", None) is None:
        return json_response({"status": "starting"}, status=503)
    return json_response({"status": "ready"})
