"""Admin routes, guarded by the admin key."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from cache import SemanticCache
from cache.errors import StoreError
from proxy import deps
from proxy.chat_service import ChatService
from proxy.directives import checked_namespace
from proxy.errors import CacheDisabled, StoreUnavailable
from proxy.masking import mask_secrets
from proxy.openapi import json_body
from proxy.wire import json_response, read_json, validate

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(deps.admin)])


class ThresholdUpdate(BaseModel):
    """``PUT /admin/thresholds/{namespace}``."""

    threshold: float | None = Field(ge=-1.0, le=1.0, strict=True)
    """Minimum cosine similarity for a hit in the namespace; null goes back to the config.
    A JSON number: ``true`` or ``"0.9"`` is refused (strict), not read as 1.0 or 0.9."""


@router.get("/config")
async def effective_config(settings: deps.SettingsDep) -> Response:
    """The configuration in force, secrets masked (``proxy.masking``)."""
    return json_response(mask_secrets(settings.model_dump(mode="json")))


def _cache(service: ChatService) -> SemanticCache:
    if service.cache is None:
        raise CacheDisabled()
    return service.cache


@router.get("/thresholds")
async def thresholds(service: deps.ChatDep) -> Response:
    """The default threshold and every namespace's (config and live)."""
    cache = _cache(service)
    return json_response({"default": cache.settings.threshold, "namespaces": cache.thresholds()})


@router.put("/thresholds/{namespace}", openapi_extra=json_body(ThresholdUpdate))
async def set_threshold(
    namespace: str, request: Request, service: deps.ChatDep, settings: deps.SettingsDep
) -> Response:
    """Set a namespace's live threshold; every replica follows within
    ``cache.threshold_refresh_s``."""
    checked_namespace(namespace, "namespace")
    update = validate(ThresholdUpdate, await read_json(request, settings.max_body_bytes))
    cache = _cache(service)
    try:
        await cache.set_threshold(namespace, update.threshold)
    except StoreError:
        raise StoreUnavailable() from None
    return json_response({"namespace": namespace, "threshold": update.threshold})
