"""Admin routes that delete cache entries (``cache.invalidation``): one entry by id, or every
entry a filter names. The deletion is in the store every replica reads, so on Redis every
replica stops serving the entries at once; each one is a line in the log."""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from cache.errors import StoreError
from cache.invalidation import ENTRY_ID_PATTERN, Invalidation, invalidate
from proxy import deps
from proxy.chat_service import ChatService
from proxy.errors import CacheDisabled, GatewayError, InvalidRequest, StoreUnavailable
from proxy.openapi import json_body
from proxy.wire import json_response, read_json, validate

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(deps.admin)])
BY = "admin"
"""Who the log line names: whoever holds the admin key (the line carries the request id)."""


async def _deleted(service: ChatService, which: Invalidation) -> int:
    if service.cache is None:
        raise CacheDisabled()
    try:
        return await invalidate(service.cache.store, which, BY)
    except StoreError:
        raise StoreUnavailable() from None


@router.delete("/entries/{entry_id}")
async def delete_entry(entry_id: str, service: deps.ChatDep) -> Response:
    """Delete one entry (the id a hit names in ``x-vetcache-entry``) and its copies under
    other embedding versions; 404 when there is no such entry."""
    if re.fullmatch(ENTRY_ID_PATTERN, entry_id) is None:
        raise InvalidRequest(
            "entry_id must be 1-128 letters, digits, _ or -", param="entry_id", code="invalid_entry"
        )
    deleted = await _deleted(service, Invalidation(entry=entry_id))
    if not deleted:
        raise GatewayError(f"No entry {entry_id}", status=404, code="entry_not_found")
    return json_response({"deleted": deleted, "entry": entry_id})


@router.post("/invalidate", openapi_extra=json_body(Invalidation))
async def invalidate_entries(
    request: Request, service: deps.ChatDep, settings: deps.SettingsDep
) -> Response:
    """Delete every entry the filter names: ``entry``, ``namespace``, ``tenant``, ``model``,
    ``created_before`` (all given must hold), or ``"all": true``; an empty filter is
    refused."""
    which = validate(Invalidation, await read_json(request, settings.max_body_bytes))
    deleted = await _deleted(service, which)
    return json_response({"deleted": deleted, "filter": which.conditions()})
