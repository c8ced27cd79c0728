"""The gauges of shared state (live thresholds, entries, audit queue depth, spilled jobs,
FP rates per namespace, per cohort and of shadow mode) and the windowed views of the
request counters (``proxy.views``), refreshed in the background every ``metrics.refresh_s``,
never while a scrape waits. Failures are logged once per streak and leave the last values in
place."""

from __future__ import annotations

import asyncio
import logging

from audit import Auditor
from audit.errors import AuditError
from audit.stats import FPRate
from audit.window import VerdictWindow
from cache import SemanticCache
from cache.errors import StoreError
from cache.periodic import Periodic
from proxy.metrics import Metrics
from proxy.settings import MetricsSettings
from proxy.summary import read_counts
from proxy.views import RecentCounts

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
        self.recent = RecentCounts(settings.view_window_s)
        self._failing = False
        self._loop = Periodic("vetcache-metrics", self.refresh, settings.refresh_s)

    async def refresh(self) -> None:
        """Refresh every gauge once."""
        # In this process (or the workers' files): known even while Redis is down.
        self.metrics.set_views(self.recent.update(read_counts(self.metrics.registry)))
        if self.auditor is not None:
            self.metrics.spilled.set(self.auditor.spilled)
        try:
            if self.cache is not None:
                cache = self.cache
                self.metrics.set_thresholds(cache.settings.threshold, cache.thresholds())
                self.metrics.set_entries(await cache.sizes(self.metrics.max_namespaces))
                self.metrics.versions.set(cache.versions)
            if self.auditor is not None:
                self.metrics.queue_depth.set(await self.auditor.queue_depth())
                self.metrics.set_fp_rates(await self._fp_rates(self.auditor))
                # Off the event loop: a prompt's language is detected once (~50 us; memoized).
                self.metrics.cohorts.set(await asyncio.to_thread(self.window.breakdown))
        except (StoreError, AuditError) as exc:
            if not self._failing:
                log.warning("metrics refresh failed: %s", type(exc).__name__)
            self._failing = True
            return
        self._failing = False

    async def _fp_rates(self, auditor: Auditor) -> dict[str, FPRate]:
        try:
            return await self.window.refresh(auditor.verdicts_since)
        except AuditError:
            # The verdicts held still age out: no rate outlives its window while the
            # ledger is down.
            self.metrics.set_fp_rates(self.window.held())
            raise

    def start(self) -> None:
        """Refresh now and then every ``refresh_s``."""
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
