"""The app factory: ``create_app(settings)`` builds the gateway around one ``Settings``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from proxy import __version__
from proxy.auth import KeyRing
from proxy.errors import install_error_handlers
from proxy.middleware import RequestContext
from proxy.routes import admin, chat, embeddings, health, models
from proxy.settings import Settings, load_settings
from proxy.upstream import Upstream


def create_app(settings: Settings) -> FastAPI:
    """The gateway as an ASGI app. Resources open in the lifespan and close with it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        upstream = Upstream(settings)
        app.state.upstream = upstream
        try:
            yield
        finally:
            app.state.upstream = None
            await upstream.aclose()

    app = FastAPI(
        title="vetcache",
        version=__version__,
        summary="OpenAI-compatible LLM gateway with a semantic cache that vets its own hits",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.keyring = KeyRing(settings)
    app.state.upstream = None
    install_error_handlers(app)
    app.add_middleware(RequestContext, access_log=settings.access_log)
    for module in (chat, embeddings, models, health, admin):
        app.include_router(module.router)
    return app


def app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory`` worker processes: settings from the environment
    (``vetcache serve --workers N`` passes the config file as ``VETCACHE_CONFIG_FILE``)."""
    return create_app(load_settings())
