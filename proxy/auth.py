"""Gateway API keys: each maps to a tenant; a separate key guards the admin routes.

Only SHA-256 digests of keys are kept in memory. A presented key is hashed and compared
against every stored digest with ``hmac.compare_digest``, without stopping at a match, so
the time taken does not depend on which key (if any) matched.
"""

from __future__ import annotations

import hashlib
import hmac

from pydantic import BaseModel, ConfigDict

from proxy.errors import AuthenticationFailed, PermissionDenied
from proxy.settings import Settings


class Principal(BaseModel):
    """Who is calling: the tenant a request is billed and cached under."""

    model_config = ConfigDict(frozen=True)

    tenant: str
    """Tenant name from the key's config entry (or the default tenant with auth off)."""
    key_id: str | None
    """First 12 hex digits of the key's SHA-256, safe to log; None with auth off."""


def hash_key(key: str) -> str:
    """The hex SHA-256 of ``key``, the form keys are configured and stored in."""
    return hashlib.sha256(key.encode()).hexdigest()


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise AuthenticationFailed(
            "Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'",
            code="missing_api_key",
        )
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationFailed("Authorization header must be 'Bearer <key>'")
    return token


class KeyRing:
    """The configured keys, as digests."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.auth.enabled
        self.default_tenant = settings.auth.default_tenant
        self._clients: list[tuple[bytes, str]] = []
        for entry in settings.auth.api_keys:
            digest = entry.key_sha256 or hash_key(entry.key.get_secret_value())  # type: ignore[union-attr]
            self._clients.append((bytes.fromhex(digest), entry.tenant))
        admin = settings.admin_key_sha256
        if admin is None and settings.admin_key is not None:
            admin = hash_key(settings.admin_key.get_secret_value())
        self._admin = bytes.fromhex(admin) if admin else None

    def client(self, authorization: str | None, api_key: str | None = None) -> Principal:
        """The principal for a client request's ``Authorization`` header, or, without one,
        its ``x-api-key`` header (``api_key``: what Anthropic's clients send), on every
        client route alike."""
        if not self.enabled:
            return Principal(tenant=self.default_tenant, key_id=None)
        key = api_key.strip() if not authorization and api_key and api_key.strip() else None
        presented = hashlib.sha256((key or _bearer(authorization)).encode()).digest()
        tenant: str | None = None
        for digest, owner in self._clients:
            if hmac.compare_digest(presented, digest):
                tenant = owner
        if tenant is None:
            raise AuthenticationFailed("Incorrect API key provided")
        return Principal(tenant=tenant, key_id=presented.hex()[:12])

    def is_admin_key(self, key: str) -> bool:
        """Whether ``key`` is the admin key (for headers that carry it bare)."""
        presented = hashlib.sha256(key.encode()).digest()
        return self._admin is not None and hmac.compare_digest(presented, self._admin)

    def admin(self, authorization: str | None) -> None:
        """Raise unless ``authorization`` carries the admin key."""
        if self._admin is None:
            raise PermissionDenied(
                "The admin API is disabled: no admin key is configured", code="admin_disabled"
            )
        presented = hashlib.sha256(_bearer(authorization).encode()).digest()
        if not hmac.compare_digest(presented, self._admin):
            raise AuthenticationFailed("Incorrect admin key provided")
