"""The app factory: ``create_app(settings)`` builds the gateway around one ``Settings``."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from audit import Auditor, build_auditor
from audit.autopilot import Autopilot
from cache import SemanticCache, StoreUnusable, build_cache
from proxy import __version__
from proxy.auth import KeyRing
from proxy.chat_service import ChatService
from proxy.errors import install_error_handlers
from proxy.logs import configure as configure_logging
from proxy.metrics import Metrics, MetricsRefresher
from proxy.middleware import RequestContext
from proxy.openapi import ERRORS
from proxy.openapi import install as install_openapi
from proxy.routes import admin, audits, chat, embeddings, health, models, ui
from proxy.settings import Settings, load_settings
from proxy.tracing import tracer
from proxy.upstream import Upstream

log = logging.getLogger("vetcache.app")


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
    metrics = Metrics(registry or CollectorRegistry(), settings.metrics.max_namespaces)
    metrics.tracer = tracer(settings.tracing)  # None when tracing is off

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        semantic = cache
        if semantic is None and settings.cache.enabled:
            semantic = build_cache(
                settings.cache, settings.redis_url, redis_cluster=settings.redis_cluster
            )
        if semantic is not None:
            semantic.observer = metrics
            log.info(
                "cache: %s, embedder %s", _store_name(settings), settings.cache.embedding_model
            )
            try:
                await semantic.open()
            except StoreUnusable as exc:
                log.error("cannot start: %s", exc)
                raise
        auditor = None
        if semantic is not None and settings.audit.enabled:
            auditor = build_auditor(
                settings.audit,
                settings.redis_url,
                semantic.store,
                observer=metrics,
                redis_cluster=settings.redis_cluster,
            )
            await auditor.open()
        upstream = Upstream(settings)
        guard = semantic is not None and semantic.settings.contrast_guard
        service = ChatService(upstream, semantic, auditor, guard=guard, metrics=metrics)
        refresher = MetricsRefresher(metrics, settings.metrics, semantic, auditor)
        refresher.start()
        autopilot = _autopilot(settings, semantic, auditor, metrics)
        app.state.upstream, app.state.chat, app.state.auditor = upstream, service, auditor
        app.state.refresher = refresher
        try:
            yield
        finally:
            app.state.upstream = app.state.chat = app.state.auditor = None
            await refresher.stop()
            if autopilot is not None:
                await autopilot.stop()
            await service.drain()
            await upstream.aclose()
            if auditor is not None:
                await auditor.close()
            if semantic is not None:
                await semantic.close()

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
    )
    app.state.settings = settings
    app.state.keyring = KeyRing(settings)
    app.state.metrics = metrics
    app.state.upstream = app.state.chat = app.state.auditor = None
    install_error_handlers(app)
    app.add_middleware(RequestContext, access_log=settings.access_log, tracer=metrics.tracer)
    for module in (chat, embeddings, models, health, admin, ui):
        app.include_router(module.router)
    app.include_router(audits.admin)
    app.include_router(audits.public)
    install_openapi(app)
    return app


def _autopilot(
    settings: Settings, cache: SemanticCache | None, auditor: Auditor | None, metrics: Metrics
) -> Autopilot | None:
    """The threshold autopilot, started, when namespaces opted in (and audits run)."""
    if cache is None or auditor is None or not settings.audit.autopilot.namespaces:
        return None
    autopilot = Autopilot(
        settings.audit.autopilot,
        settings.audit,
        auditor.ledger,
        cache,
        owner=f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}",
        on_move=metrics.autopilot_move,
    )
    autopilot.start()
    return autopilot


def app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory`` worker processes: settings from the environment
    (``vetcache serve --workers N`` passes the config file as ``VETCACHE_CONFIG_FILE``)."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)  # a spawned process
    return create_app(settings)


def _store_name(settings: Settings) -> str:
    if not settings.redis_url:
        return "the in-process store (no redis_url set)"
    return "Redis Cluster" if settings.redis_cluster else "Redis"
