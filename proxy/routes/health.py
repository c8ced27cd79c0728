"""Liveness and readiness probes and Prometheus metrics (no auth: orchestrators and
Prometheus call them; keep the port off the public internet or put ``/metrics`` behind
your ingress's auth)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from proxy import deps
from proxy.errors import GatewayError
from proxy.exposition import render
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


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus text format: this process's metrics, or all workers' with ``--workers``."""
    if not deps.app_settings(request).metrics.enabled:
        raise GatewayError("Metrics are disabled", status=404, code="not_found")
    body, content_type = render(deps.metrics(request).registry)
    return Response(body, media_type=content_type)
