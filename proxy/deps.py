"""FastAPI dependencies: the app's resources and the caller's identity.

Resources live on ``app.state`` (opened in the lifespan, see ``proxy.app``); routes reach
them only through these functions, so tests can build an app around any ``Settings``.

The dependencies are ``async def`` although they never wait: FastAPI runs a plain ``def``
dependency in a worker thread, and the three a chat request had cost three thread hops
(~7% of a cache hit's time on the event loop, profiled). Routes that need a resource outside
the dependency system call the plain functions (``app_settings``, ``keyring``, ...).
"""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import Request

from audit import Auditor
from proxy.auth import KeyRing, Principal
from proxy.chat_service import ChatService
from proxy.errors import GatewayError
from proxy.metrics import Metrics
from proxy.settings import Settings
from proxy.upstream import Upstream


def app_settings(request: Request) -> Settings:
    """The app's settings."""
    return cast(Settings, request.app.state.settings)


async def settings(request: Request) -> Settings:
    """The app's settings (dependency)."""
    return app_settings(request)


async def upstream(request: Request) -> Upstream:
    """The upstream client; 503 while the app is starting or stopping."""
    client = getattr(request.app.state, "upstream", None)
    if client is None:
        raise GatewayError("The gateway is not ready", status=503, code="not_ready")
    return cast(Upstream, client)


async def chat(request: Request) -> ChatService:
    """The chat service (cache + upstream); 503 while the app is starting or stopping."""
    service = getattr(request.app.state, "chat", None)
    if service is None:
        raise GatewayError("The gateway is not ready", status=503, code="not_ready")
    return cast(ChatService, service)


async def auditor(request: Request) -> Auditor:
    """The auditor; 409 when audits are off (or the cache is)."""
    found = getattr(request.app.state, "auditor", None)
    if found is None:
        raise GatewayError("Audits are disabled", status=409, code="audit_disabled")
    return cast(Auditor, found)


def metrics(request: Request) -> Metrics:
    """The app's metrics."""
    return cast(Metrics, request.app.state.metrics)


def keyring(request: Request) -> KeyRing:
    """The configured keys."""
    return cast(KeyRing, request.app.state.keyring)


# For the OpenAPI document only (``security`` of each route): never raise, and the key is
# read and checked by ``KeyRing`` below.
_CLIENT_KEY = HTTPBearer(
    scheme_name="clientKey", description="A tenant's API key", auto_error=False
)
_ADMIN_KEY = HTTPBearer(scheme_name="adminKey", description="The admin key", auto_error=False)
Documented = Annotated[HTTPAuthorizationCredentials | None, Security(_CLIENT_KEY)]
DocumentedAdmin = Annotated[HTTPAuthorizationCredentials | None, Security(_ADMIN_KEY)]


async def client(request: Request, _documented: Documented) -> Principal:
    """The calling tenant, from ``Authorization: Bearer`` (or ``x-api-key``)."""
    headers = request.headers
    return keyring(request).client(headers.get("authorization"), headers.get("x-api-key"))


async def admin(request: Request, _documented: DocumentedAdmin) -> None:
    """Require the admin key."""
    keyring(request).admin(request.headers.get("authorization"))


def request_id(request: Request) -> str:
    """The id ``proxy.middleware.RequestContext`` gave this request."""
    return cast(str, request.state.request_id)


SettingsDep = Annotated[Settings, Depends(settings)]
UpstreamDep = Annotated[Upstream, Depends(upstream)]
ChatDep = Annotated[ChatService, Depends(chat)]
AuditorDep = Annotated[Auditor, Depends(auditor)]
ClientDep = Annotated[Principal, Depends(client)]
