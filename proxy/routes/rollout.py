"""Admin routes of a namespace's embedding-version rollout (``cache.rollout``), the same steps
as ``vetcache rollout``: status, start, cutover, rollback, abort. The migration itself and
the margin gate run from the CLI (``rollout migrate``, ``rollout gate``): they load models
and run for minutes, which a request should not."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from audit.rollout_evidence import VERDICTS_READ, gather
from audit.schema import Verdict
from cache.errors import RolloutRefused, StoreError
from cache.rollout import Rollout
from proxy import deps
from proxy.chat_service import ChatService
from proxy.directives import checked_namespace
from proxy.errors import CacheDisabled, GatewayError, StoreUnavailable
from proxy.openapi import json_body
from proxy.rollout_view import status
from proxy.wire import json_response, read_json, validate

router = APIRouter(prefix="/admin/rollout", tags=["admin"], dependencies=[Depends(deps.admin)])


class RolloutStart(BaseModel):
    """``POST /admin/rollout/{namespace}/start``."""

    version: str = Field(min_length=1, max_length=64)
    """The name of a loaded version (``cache.embedding_versions``)."""


def _rollout(service: ChatService) -> Rollout:
    cache = service.cache
    if cache is None:
        raise CacheDisabled()
    return Rollout(cache.store, cache.versions.embedders, cache.settings.rollout)


async def _verdicts(service: ChatService, namespace: str, since: float) -> list[Verdict]:
    if service.auditor is None:
        return []
    return await service.auditor.verdicts(namespace=namespace, since=since, limit=VERDICTS_READ)


async def _status(service: ChatService, rollout: Rollout, namespace: str) -> Response:
    state = await rollout.state(namespace)
    since = state.changed_at if state is not None else 0.0
    found = await status(rollout, namespace, await _verdicts(service, namespace, since))
    return json_response(found)


async def _cutover(service: ChatService, rollout: Rollout, namespace: str) -> None:
    state = await rollout.state(namespace)
    since = state.changed_at if state is not None else 0.0
    verdicts = await _verdicts(service, namespace, since)
    await rollout.cutover(namespace, await gather(rollout.store, namespace, state, verdicts))


async def _step(service: ChatService, namespace: str, step: str, version: str = "") -> Response:
    """Run one step, refresh this replica's view, answer with the new status (409 with
    every reason when the step is refused)."""
    checked_namespace(namespace, "namespace")
    rollout = _rollout(service)
    try:
        if step == "status":
            return await _status(service, rollout, namespace)
        if step == "start":
            await rollout.start(namespace, version)
        elif step == "cutover":
            await _cutover(service, rollout, namespace)
        elif step == "rollback":
            await rollout.rollback(namespace)
        elif step == "abort":
            await rollout.abort(namespace)
        assert service.cache is not None
        await service.cache.refresh_thresholds()
        return await _status(service, rollout, namespace)
    except RolloutRefused as exc:
        raise GatewayError(
            f"Rollout {step} refused: {exc}", status=409, code="rollout_refused"
        ) from None
    except StoreError:
        raise StoreUnavailable() from None


@router.get("/{namespace}")
async def rollout_status(namespace: str, service: deps.ChatDep) -> Response:
    """The namespace's versions, migration, shadow comparison per cohort, and why a cutover
    would be refused now."""
    return await _step(service, namespace, "status")


@router.post("/{namespace}/start", openapi_extra=json_body(RolloutStart))
async def rollout_start(
    namespace: str, request: Request, service: deps.ChatDep, settings: deps.SettingsDep
) -> Response:
    """Begin migrating the namespace to a loaded version: admissions are written under both,
    a share of lookups is repeated under it; ``vetcache rollout migrate`` copies the rest."""
    body = validate(RolloutStart, await read_json(request, settings.max_body_bytes))
    return await _step(service, namespace, "start", body.version)


@router.post("/{namespace}/cutover")
async def rollout_cutover(namespace: str, service: deps.ChatDep) -> Response:
    """Serve the target, every replica within ``cache.threshold_refresh_s``; 409 with the
    reasons when the migration, the margin gate or the shadow numbers say no."""
    return await _step(service, namespace, "cutover")


@router.post("/{namespace}/rollback")
async def rollout_rollback(namespace: str, service: deps.ChatDep) -> Response:
    """Serve the version served before the last cutover again (while it is retained)."""
    return await _step(service, namespace, "rollback")


@router.post("/{namespace}/abort")
async def rollout_abort(namespace: str, service: deps.ChatDep) -> Response:
    """Stop migrating and delete the target's entries."""
    return await _step(service, namespace, "abort")
