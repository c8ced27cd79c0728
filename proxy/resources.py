"""What a gateway opens at start and closes at stop, in order: the cache, the auditor, the
upstream client, the chat service, the metrics refresher and (opted in) the threshold
autopilot. The composition root's runtime half (``proxy.app`` builds the app around it)."""

from __future__ import annotations

import logging

from audit import Auditor, build_auditor
from audit.autopilot import Autopilot
from cache import SemanticCache, build_cache
from cache.errors import StoreUnusable, VerifierError
from proxy.chat_service import ChatService
from proxy.metrics import Metrics
from proxy.refresher import MetricsRefresher
from proxy.settings import Settings
from proxy.tracing import Tracing
from proxy.upstream import Upstream

log = logging.getLogger("vetcache.app")


class Resources:
    """One gateway's open resources."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        tracing: Tracing,
        cache: SemanticCache | None = None,
    ) -> None:
        """``cache`` replaces the one ``settings`` describe (tests pass one built on fakes)."""
        self.settings = settings
        self.metrics = metrics
        self.tracing = tracing
        self.cache = cache
        if cache is None and settings.cache.enabled:
            self.cache = build_cache(
                settings.cache, settings.redis_url, redis_cluster=settings.redis_cluster
            )
        self.auditor: Auditor | None = None
        self.upstream: Upstream | None = None
        self.chat: ChatService | None = None
        self._refresher: MetricsRefresher | None = None
        self._autopilot: Autopilot | None = None

    async def open(self) -> None:
        """Open everything; ``StoreUnusable`` (a Redis that can never work) and
        ``VerifierError`` (a verifier model that is not one) stop the start."""
        settings, cache = self.settings, self.cache
        if cache is not None:
            cache.observer = self.metrics
            log.info(
                "cache: %s, embedder %s", _store_name(settings), settings.cache.embedding_model
            )
            try:
                await cache.open()
            except (StoreUnusable, VerifierError) as exc:
                log.error("cannot start: %s", exc)
                raise
            if settings.audit.enabled:
                self.auditor = build_auditor(
                    settings.audit,
                    settings.redis_url,
                    cache.store,
                    observer=self.metrics,
                    redis_cluster=settings.redis_cluster,
                )
                await self.auditor.open()
        self.upstream = Upstream(settings)
        await self.upstream.open()
        self.chat = ChatService(self.upstream, cache, self.auditor, self.metrics, self.tracing)
        self._refresher = MetricsRefresher(self.metrics, settings.metrics, cache, self.auditor)
        self._refresher.start()
        if cache is not None and self.auditor is not None and settings.audit.autopilot.namespaces:
            self._autopilot = self.auditor.autopilot(cache, on_move=self.metrics.autopilot_move)
            self._autopilot.start()

    async def close(self) -> None:
        """Close in reverse: background loops, admissions still running, the upstream, the
        auditor (its spill gets a last try), the cache."""
        if self._refresher is not None:
            await self._refresher.stop()
        if self._autopilot is not None:
            await self._autopilot.stop()
        if self.chat is not None:
            await self.chat.drain()
        if self.upstream is not None:
            await self.upstream.aclose()
        if self.auditor is not None:
            await self.auditor.close()
        if self.cache is not None:
            await self.cache.close()


def _store_name(settings: Settings) -> str:
    if not settings.redis_url:
        return "the in-process store (no redis_url set)"
    return "Redis Cluster" if settings.redis_cluster else "Redis"
