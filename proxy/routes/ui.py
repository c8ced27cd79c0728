"""The built-in page at ``/ui`` and the numbers it shows.

The page is static (HTML, one script, one stylesheet: no build step) and holds no data; it
asks for the admin key and calls the admin API with it: ``/admin/summary`` (below),
``/admin/fp-rate``, ``/admin/thresholds``, ``/admin/review-queue`` and
``/admin/verdicts/{id}/review``. Prompts and answers are put on the page as text, never as
HTML, and a strict Content-Security-Policy allows only the page's own script.
"""

from __future__ import annotations

import contextlib
from functools import cache
from importlib import resources

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from audit.errors import QueueError
from proxy import deps
from proxy.errors import GatewayError
from proxy.summary import summary
from proxy.wire import json_response

router = APIRouter(tags=["ui"])

_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


@cache
def _asset(name: str) -> bytes:
    return resources.files("proxy").joinpath("ui", name).read_bytes()


@router.get("/ui", include_in_schema=False)
async def page() -> Response:
    """The page (it asks for the admin key itself)."""
    return Response(_asset("index.html"), media_type=_FILES["index.html"], headers=_HEADERS)


@router.get("/ui/{name}", include_in_schema=False)
async def asset(name: str) -> Response:
    """The page's script and stylesheet."""
    if name not in _FILES or name == "index.html":
        raise GatewayError("Not found", status=404, code="not_found")
    return Response(_asset(name), media_type=_FILES[name], headers=_HEADERS)


@router.get("/admin/summary", dependencies=[Depends(deps.admin)], tags=["admin"])
async def admin_summary(request: Request) -> Response:
    """Since start, over every worker process: requests by outcome, hit ratio, latency
    p50/p99 (all requests and hits), and the audit queue's depth."""
    body = summary(deps.metrics(request).registry)
    auditor = getattr(request.app.state, "auditor", None)
    body["audit_queue_depth"] = None
    if auditor is not None:
        with contextlib.suppress(QueueError):  # the page shows a dash
            body["audit_queue_depth"] = await auditor.queue_depth()
    return json_response(body)
