from __future__ import annotations

import pytest

from proxy.auth import KeyRing, hash_key
from proxy.errors import AuthenticationFailed, PermissionDenied
from proxy.settings import Settings


def keyring(**auth: object) -> KeyRing:
    return KeyRing(Settings(auth=auth, admin_key_sha256=hash_key("root-key")))


def test_key_maps_to_its_tenant() -> None:
    ring = keyring(
        api_keys=[
            {"tenant": "acme", "key_sha256": hash_key("sk-acme")},
            {"tenant": "globex", "key": "sk-globex"},
        ]
    )
    assert ring.client("Bearer sk-acme").tenant == "acme"
    assert ring.client("bearer sk-globex").tenant == "globex"
    assert ring.client("Bearer sk-acme").key_id == hash_key("sk-acme")[:12]


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer ", "Basic c2stYWNtZQ==", "sk-acme", "Bearer sk-other"]
)
def test_bad_credentials_are_refused(header: str | None) -> None:
    ring = keyring(api_keys=[{"tenant": "acme", "key_sha256": hash_key("sk-acme")}])
    with pytest.raises(AuthenticationFailed):
        ring.client(header)


def test_only_digests_are_kept() -> None:
    ring = keyring(api_keys=[{"tenant": "globex", "key": "sk-globex"}])
    assert "sk-globex" not in repr(vars(ring))


def test_auth_off_gives_the_default_tenant() -> None:
    ring = keyring(enabled=False, default_tenant="local")
    assert ring.client(None).tenant == "local"


def test_admin_key_is_separate_from_client_keys() -> None:
    ring = keyring(api_keys=[{"tenant": "acme", "key_sha256": hash_key("sk-acme")}])
    ring.admin("Bearer root-key")
    with pytest.raises(AuthenticationFailed):
        ring.admin("Bearer sk-acme")
    with pytest.raises(AuthenticationFailed):
        ring.client("Bearer root-key")


def test_admin_api_disabled_without_admin_key() -> None:
    ring = KeyRing(Settings(auth={"enabled": False}))
    with pytest.raises(PermissionDenied, match="disabled"):
        ring.admin("Bearer anything")


def test_x_api_key_is_a_client_key_when_authorization_is_absent() -> None:
    """Anthropic's clients send the key as ``x-api-key``; Authorization wins when both come."""
    ring = keyring(
        api_keys=[
            {"tenant": "acme", "key_sha256": hash_key("sk-acme")},
            {"tenant": "globex", "key": "sk-globex"},
        ]
    )
    assert ring.client(None, "sk-acme").tenant == "acme"
    assert ring.client(None, "sk-acme").key_id == hash_key("sk-acme")[:12]
    assert ring.client("Bearer sk-globex", "sk-acme").tenant == "globex"
    for bad in ("sk-other", "", " ", "root-key"):
        with pytest.raises(AuthenticationFailed):
            ring.client(None, bad)
    with pytest.raises(AuthenticationFailed):
        ring.client("Bearer sk-other", "sk-acme")
