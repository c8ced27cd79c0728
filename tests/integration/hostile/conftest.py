"""The gateways the hostile-input tests talk to, in-process, one per package run."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from proxy.app import create_app
from proxy.auth import hash_key
from proxy.settings import Settings
from tests.conftest import route
from tests.integration.hostile.rig import ADMIN_KEY, CLIENT_KEY, LIMIT, fake_cache


@pytest.fixture(scope="package")
def auth_on(fake_upstream: str) -> Iterator[Callable[..., Settings]]:
    """Settings for a gateway in front of the fake upstream with a client key and an admin
    key; keyword args override. Package-scoped (one gateway serves many cases: each stops in
    about a second with the cache on), so built here with no ``VETCACHE_*`` variable set
    rather than by the function-scoped ``make_settings``."""
    with pytest.MonkeyPatch.context() as env:
        for name in [name for name in os.environ if name.startswith("VETCACHE_")]:
            env.delenv(name)

        def build(**overrides: Any) -> Settings:
            values: dict[str, Any] = {
                "auth": {"api_keys": [{"tenant": "hostile", "key_sha256": hash_key(CLIENT_KEY)}]},
                "admin_key_sha256": hash_key(ADMIN_KEY),
                "access_log": False,
                "cache": {"enabled": False},
                "model_list": [
                    route("fake-gpt", "fake-gpt", fake_upstream),
                    route("fake-embed", "fake-embed", fake_upstream),
                ],
            }
            return Settings(**{**values, **overrides})

        yield build


@pytest.fixture(scope="package")
def client(auth_on: Callable[..., Settings]) -> Iterator[TestClient]:
    """Auth on, a 1 MiB body limit, the cache and audits on (no model: hashed vectors), so
    every body route reads its body instead of stopping at a 409. One for every hand-made
    case of the package (as when they were one module): each also checks that it still
    serves afterwards."""
    app = create_app(auth_on(max_body_bytes=LIMIT), cache=fake_cache())
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
