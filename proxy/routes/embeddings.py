"""``POST /v1/embeddings``: passed through to the upstream."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from proxy import deps
from proxy.openapi import json_body
from proxy.schemas import EmbeddingRequest
from proxy.wire import json_response, read_valid

router = APIRouter(tags=["embeddings"])


@router.post("/v1/embeddings", openapi_extra=json_body(EmbeddingRequest))
async def embeddings(
    request: Request,
    principal: deps.ClientDep,
    settings: deps.SettingsDep,
    upstream: deps.UpstreamDep,
) -> Response:
    """Create embeddings."""
    body, _ = await read_valid(request, EmbeddingRequest, settings.max_body_bytes)
    upstream.check_model(body["model"])
    return json_response(await upstream.embeddings(body))
