"""The options every launch path hands uvicorn (``proxy.server``)."""

from __future__ import annotations

import httpx
import openai
import uvicorn

from proxy.server import uvicorn_options
from proxy.settings import Settings


def test_the_server_outlasts_the_clients_idle_connections() -> None:
    """A server that closes an idle connection no later than the client drops it races the
    client's reuse of it (seen as a read error under load): keep-alive must be longer than
    httpx's expiry, which the openai SDK keeps."""
    config = uvicorn.Config(
        app="proxy.app:create_app", **uvicorn_options(Settings(auth={"enabled": False}))
    )
    client_expiry = httpx.Limits().keepalive_expiry
    assert client_expiry is not None
    assert openai.DEFAULT_CONNECTION_LIMITS.keepalive_expiry in (None, client_expiry)
    assert config.timeout_keep_alive > client_expiry


def test_the_head_cap_and_h11_reach_uvicorn() -> None:
    config = uvicorn.Config(
        app="proxy.app:create_app",
        **uvicorn_options(Settings(auth={"enabled": False}, max_header_bytes=8192)),
    )
    assert config.http == "h11"
    assert config.h11_max_incomplete_event_size == 8192
