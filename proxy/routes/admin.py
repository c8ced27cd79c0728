"""Admin routes, guarded by the admin key."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.responses import Response

from proxy import deps
from proxy.wire import json_response

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(deps.admin)])


@router.get("/config")
async def effective_config(settings: deps.SettingsDep) -> Response:
    """The configuration in force, secrets masked."""
    return json_response(settings.model_dump(mode="json"))
