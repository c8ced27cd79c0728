"""The gauges of shared state (live thresholds, entries, audit queue depth, spilled jobs,
FP rates per namespace, per cohort and of shadow mode), refreshed in the background every
``metrics.refresh_s``, never while a scrape waits. Failures are logged once per streak and
leave the last values in place."""

from __future__ import annotations

import asyncio
import logging

from audit import Auditor
from audit.errors import AuditError
from audit.window import VerdictWindow
from cache import SemanticCache
from cache.errors import StoreError
from cache.periodic import Periodic
from proxy.metrics import Metrics
from proxy.settings import MetricsSettings

log = logging.getLogger("vetcache.metrics")


class MetricsRefresher:
    """Keeps the shared-state gauges current."""

    def __init__(
        self,
        metrics: Metrics,
        settings: MetricsSettings,
        cache: SemanticCache | None,
        auditor: Auditor | None,
    ) -> None:
        self.metrics = metrics
        self.settings = settings
        self.cache = cache
        self.auditor = auditor
        window = settings.fp_window_s or (auditor.settings.window_s if auditor else 3600)
        self.window = VerdictWindow(window)
        self._failing = False
        self._loop = Periodic("vetcache-metrics", self.refresh, settings.refresh_s)

    async def refresh(self) -> None:
        """Refresh every gauge once."""
        if self.auditor is not None:  # in memory: known even while Redis is down
            self.metrics.spilled.set(self.auditor.spilled)
        try:
            if self.cache is not None:
                cache = self.cache
                self.metrics.set_thresholds(cache.settings.threshold, cache.thresholds())
                self.metrics.set_entries(await cache.sizes(self.metrics.max_namespaces))
            if self.auditor is not None:
                self.metrics.queue_depth.set(await self.auditor.queue_depth())
                self.metrics.set_fp_rates(await self.window.refresh(self.auditor.verdicts_since))
                # Off the event loop: a prompt's language is detected once (~50 us; memoized).
                self.metrics.cohorts.set(await asyncio.to_thread(self.window.breakdown))
        except (StoreError, AuditError) as exc:
            if not self._failing:
                log.warning("metrics refresh failed: %s", type(exc).__name__)
            self._failing = True
            return
        self._failing = False

    def start(self) -> None:
        """Refresh now and then every ``refresh_s``."""
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
