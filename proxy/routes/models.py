"""``GET /v1/models``: the aliases this gateway serves."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from proxy import deps
from proxy.wire import json_response

router = APIRouter(tags=["models"])


def _model(alias: str) -> dict[str, Any]:
    return {"id": alias, "object": "model", "created": 0, "owned_by": "vetcache"}


@router.get("/v1/models")
async def list_models(
    principal: deps.ClientDep,
    settings: deps.SettingsDep,
) -> Response:
    """List the model aliases."""
    return json_response({"object": "list", "data": [_model(a) for a in settings.aliases]})


@router.get("/v1/models/{model:path}")
async def get_model(
    model: str,
    principal: deps.ClientDep,
    upstream: deps.UpstreamDep,
) -> Response:
    """One model alias."""
    upstream.check_model(model)
    return json_response(_model(model))
