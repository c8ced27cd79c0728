"""The app factory: ``create_app(settings)`` builds the gateway around one ``Settings``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from cache import SemanticCache
from proxy import __version__
from proxy.auth import KeyRing
from proxy.errors import install_error_handlers
from proxy.logs import configure as configure_logging
from proxy.metrics import Metrics
from proxy.middleware import RequestContext
from proxy.openapi import ERRORS
from proxy.openapi import install as install_openapi
from proxy.resources import Resources
from proxy.routes import (
    admin,
    audits,
    chat,
    completions,
    embeddings,
    health,
    index,
    invalidate,
    messages,
    models,
    responses,
    rollout,
    ui,
)
from proxy.settings import Settings, load_settings
from proxy.tracing import Tracing

log = logging.getLogger("vetcache.app")
ROUTES = (
    chat, completions, responses, messages, embeddings, models, health, index, admin,
    invalidate, rollout, ui,
)  # fmt: skip
"""The route modules, each with its ``router`` (the audit routes add two of their own)."""


def create_app(
    settings: Settings,
    cache: SemanticCache | None = None,
    registry: CollectorRegistry | None = None,
) -> FastAPI:
    """The gateway as an ASGI app. Resources open in the lifespan and close with it.

    ``cache`` replaces the one ``settings`` describe (tests pass one built on fakes or share
    one across apps); it is opened and closed with the app either way. Metrics go to
    ``registry`` (a fresh one by default; never the global one).
    """
    embedding = f"{settings.cache.embedding_model} ({settings.cache.embedding_backend})"
    tracing = Tracing(settings.tracing, embedding_model=embedding)  # off unless enabled
    metrics = Metrics(
        registry or CollectorRegistry(),
        settings.metrics.max_namespaces,
        tracing,
        tenants=len(settings.auth.tenants),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resources = Resources(settings, metrics, tracing, cache)
        await resources.open()
        app.state.upstream, app.state.chat = resources.upstream, resources.chat
        app.state.auditor = resources.auditor
        try:
            yield
        finally:
            app.state.upstream = app.state.chat = app.state.auditor = None
            await resources.close()

    app = FastAPI(
        title="vetcache",
        version=__version__,
        summary="OpenAI-compatible LLM gateway with a semantic cache that vets its own hits",
        lifespan=lifespan,
        responses=ERRORS,
        # FastAPI's own telemetry would trace (and log exceptions, messages included) as soon
        # as the process has a provider, vetcache's tracing on or off: one gateway span is
        # vetcache's own (proxy.middleware), with the attributes and stages described there.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        docs_url="/docs" if settings.api_docs else None,
        redoc_url="/redoc" if settings.api_docs else None,
        openapi_url="/openapi.json" if settings.api_docs else None,
    )
    app.state.settings = settings
    app.state.keyring = KeyRing(settings)
    app.state.metrics = metrics
    app.state.upstream = app.state.chat = app.state.auditor = None
    install_error_handlers(app)
    app.add_middleware(RequestContext, access_log=settings.access_log, tracing=tracing)
    for module in ROUTES:
        app.include_router(module.router)
    app.include_router(audits.admin)
    app.include_router(audits.public)
    install_openapi(app)
    return app


def app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory`` worker processes: settings from the environment
    (``vetcache serve --workers N`` passes the config file as ``VETCACHE_CONFIG_FILE``)."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)  # a spawned process
    return create_app(settings)
