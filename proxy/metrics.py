"""Prometheus metrics, on a registry the app is given (nothing registers globally).

``Metrics`` is the observer the cache and the audit path report to, plus what the routes
count. Gauges that summarise shared state (queue depth, FP rate, thresholds, entries) are
refreshed by ``MetricsRefresher`` in the background, never while a scrape waits.

With ``vetcache serve --workers N`` every worker process writes its samples to
``PROMETHEUS_MULTIPROC_DIR`` (the CLI sets it) and ``/metrics`` on any of them renders the
sum over all of them (prometheus-client's multiprocess mode); gauges of shared state take
the most recent write (``mostrecent``). Audit workers expose their own ``/metrics`` on
``--metrics-port`` (default 9102): scrape both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

from opentelemetry.trace import Tracer
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from audit.observe import AuditObserver
from audit.schema import AuditJob, Verdict, job_kind
from audit.stats import FPRate, fp_rate
from proxy.logs import note_stage
from proxy.settings import MetricsSettings

if TYPE_CHECKING:
    from audit import Auditor
    from audit.autopilot import Move
    from cache import SemanticCache

log = logging.getLogger("vetcache.metrics")

# Every counter and histogram child would also export a ``_created`` timestamp series:
# nearly half the page, read by no rule or panel. Off for the process, as most exporters do.
disable_created_metrics()  # type: ignore[no-untyped-call]

RequestOutcome = Literal["hit", "miss", "bypass", "error"]

# 0.5 ms .. 30 s: the hit path lives in the first few buckets, upstream calls in the last.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
    0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 20.0, 30.0,
)  # fmt: skip
# Fine steps where thresholds live (0.80-1.00), coarse below.
SIMILARITY_BUCKETS = (
    0.0, 0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.82, 0.84, 0.86, 0.88, 0.9, 0.91, 0.92, 0.93,
    0.94, 0.95, 0.96, 0.97, 0.98, 0.99, 1.0,
)  # fmt: skip
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0)

OTHER = "_other"
"""Label for namespaces past ``max_namespaces`` (the header is client-controlled)."""
DEFAULT = "_default"
"""``namespace`` label of the default threshold."""


class Metrics(AuditObserver):
    """Every vetcache metric, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry, max_namespaces: int = 200) -> None:
        self.registry = registry
        self.max_namespaces = max_namespaces
        self.tracer: Tracer | None = None
        """vetcache's tracer when tracing is on (set by the app): stages become spans."""
        self._namespaces: set[str] = set()
        r = registry
        self.requests = Counter(
            "vetcache_requests_total",
            "Chat requests by cache outcome (error: the request failed).",
            ["namespace", "model", "outcome"],
            registry=r,
        )
        self.duration = Histogram(
            "vetcache_request_duration_seconds",
            "Chat request time in the gateway (streams: until the last event).",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stages = Histogram(
            "vetcache_stage_duration_seconds",
            "Time per stage: exact_lookup, embed, vector_search, upstream, admit, judge.",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.similarity = Histogram(
            "vetcache_similarity",
            "Similarity of the best candidate, for hits and misses.",
            ["outcome"],
            buckets=SIMILARITY_BUCKETS,
            registry=r,
        )
        self.jobs = Counter(
            "vetcache_audit_jobs_total",
            "Audit jobs queued (kind: hit, near_miss, shadow: a would-be hit, admission).",
            ["namespace", "kind"],
            registry=r,
        )
        self.verdicts = Counter(
            "vetcache_audit_verdicts_total",
            "Verdicts recorded, by judge (review/feedback: labels from outside).",
            ["namespace", "verdict", "judge", "kind"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "vetcache_audit_queue_depth",
            "Audit jobs waiting.",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.spilled = Gauge(
            "vetcache_audit_spilled_jobs",
            "Audit jobs held in this process while the queue is unreachable.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.lag = Histogram(
            "vetcache_audit_lag_seconds",
            "Time from queueing an audit job to its verdict.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.fp_rate = Gauge(
            "vetcache_false_positive_rate",
            "False-positive rate of served hits over the window.",
            ["namespace"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.fp_upper = Gauge(
            "vetcache_false_positive_rate_upper",
            "Wilson 95% upper bound of the false-positive rate.",
            ["namespace"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.fp_lower = Gauge(
            "vetcache_false_positive_rate_lower",
            "Wilson 95% lower bound of the false-positive rate.",
            ["namespace"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.fp_labelled = Gauge(
            "vetcache_false_positive_labelled",
            "Labelled served hits (correct + false_positive) behind the FP rate.",
            ["namespace"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.threshold = Gauge(
            "vetcache_threshold",
            "Similarity threshold in force per namespace (_default: the default).",
            ["namespace"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.entries = Gauge(
            "vetcache_cache_entries",
            "Live cache entries per namespace.",
            ["namespace"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.tokens_saved = Counter(
            "vetcache_tokens_saved_total",
            "Tokens not spent upstream because a hit answered.",
            ["namespace"],
            registry=r,
        )
        self.cost_saved = Counter(
            "vetcache_cost_saved_usd_total",
            "Upstream cost not spent because a hit answered (litellm's price map).",
            ["namespace"],
            registry=r,
        )
        self.cache_errors = Counter(
            "vetcache_cache_errors_total",
            "Cache failures that fell open (store, embedder, timeout, audit).",
            ["kind"],
            registry=r,
        )
        self.shadow_lookups = Counter(
            "vetcache_shadow_lookups_total",
            "Lookups in shadow mode (always answered upstream): would_hit or would_miss.",
            ["namespace", "outcome"],
            registry=r,
        )
        self.autopilot_moves = Counter(
            "vetcache_autopilot_moves_total",
            "Threshold moves the autopilot made (direction: up or down).",
            ["namespace", "direction"],
            registry=r,
        )
        self.guard_vetoes = Counter(
            "vetcache_contrast_guard_vetoes_total",
            "Would-be hits the contrast guard turned into misses.",
            ["namespace"],
            registry=r,
        )

    def namespace(self, name: str) -> str:
        """The label for ``name``: itself while fewer than ``max_namespaces`` are known."""
        if name in self._namespaces:
            return name
        if len(self._namespaces) >= self.max_namespaces:
            return OTHER
        self._namespaces.add(name)
        return name

    # What the routes and the chat service count.

    def request(
        self,
        namespace: str,
        model: str,
        outcome: RequestOutcome,
        seconds: float,
        similarity: float | None = None,
    ) -> None:
        """One chat request finished."""
        self.requests.labels(self.namespace(namespace), model, outcome).inc()
        self.duration.labels(outcome).observe(seconds)
        if similarity is not None and outcome in ("hit", "miss"):
            self.similarity.labels(outcome).observe(similarity)

    def saved(self, namespace: str, tokens: int, usd: float) -> None:
        """A hit saved ``tokens`` tokens costing ``usd``."""
        label = self.namespace(namespace)
        if tokens > 0:
            self.tokens_saved.labels(label).inc(tokens)
        if usd > 0:
            self.cost_saved.labels(label).inc(usd)

    def autopilot_move(self, move: Move) -> None:
        self.autopilot_moves.labels(self.namespace(move.namespace), move.direction).inc()
        self.threshold.labels(self.namespace(move.namespace)).set(move.new)

    def guard_veto(self, namespace: str) -> None:
        self.guard_vetoes.labels(self.namespace(namespace)).inc()

    # Observer hooks (cache and audit).

    def stage(self, stage: str, seconds: float) -> None:
        self.stages.labels(stage).observe(seconds)
        note_stage(stage, seconds)  # and into the request's access line

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Time the block as ``stage``; with tracing on, also as the span ``vetcache.<stage>``
        (a child of the request's span)."""
        if self.tracer is None:
            with super().timed(stage):
                yield
            return
        with self.tracer.start_as_current_span(f"vetcache.{stage}"), super().timed(stage):
            yield

    def cache_error(self, kind: str) -> None:
        self.cache_errors.labels(kind).inc()

    def job_queued(self, job: AuditJob) -> None:
        self.jobs.labels(self.namespace(job.namespace), job_kind(job)).inc()

    def shadow_lookup(self, namespace: str, would_hit: bool) -> None:
        """A lookup in shadow mode: would it have been served?"""
        outcome = "would_hit" if would_hit else "would_miss"
        self.shadow_lookups.labels(self.namespace(namespace), outcome).inc()

    def verdict_recorded(self, verdict: Verdict) -> None:
        job = verdict.job
        kind = job_kind(job)
        self.verdicts.labels(
            self.namespace(job.namespace), verdict.verdict, verdict.judge or verdict.source, kind
        ).inc()
        if verdict.source == "judge" and job.queued_at:
            self.lag.observe(max(0.0, verdict.created_at - job.queued_at))

    # Shared state, set by the refresher.

    def set_fp_rates(self, rates: dict[str, FPRate]) -> None:
        for namespace, rate in rates.items():
            label = self.namespace(namespace)
            if label == OTHER:
                continue
            if rate.rate is not None:
                self.fp_rate.labels(label).set(rate.rate)
            self.fp_upper.labels(label).set(rate.upper)
            self.fp_lower.labels(label).set(rate.lower)
            self.fp_labelled.labels(label).set(rate.labelled)

    def set_thresholds(self, default: float, per_namespace: dict[str, float]) -> None:
        self.threshold.labels(DEFAULT).set(default)
        for namespace, value in per_namespace.items():
            label = self.namespace(namespace)
            if label != OTHER:
                self.threshold.labels(label).set(value)

    def set_entries(self, sizes: dict[str, int]) -> None:
        for namespace, size in sizes.items():
            label = self.namespace(namespace)
            if label != OTHER:
                self.entries.labels(label).set(size)


def multiprocess_dir() -> str | None:
    """The multiprocess directory, when this process is one of several workers."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def _exposed(registry: CollectorRegistry) -> CollectorRegistry:
    """This registry, or one that reads every worker's samples in multiprocess mode."""
    directory = multiprocess_dir()
    if directory is None:
        return registry
    combined = CollectorRegistry()
    MultiProcessCollector(combined, path=directory)  # type: ignore[no-untyped-call]
    return combined


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The exposition for ``/metrics``: this registry, or every worker's in multiprocess mode."""
    return generate_latest(_exposed(registry)), CONTENT_TYPE_LATEST


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """``q``-quantile from cumulative (upper bound, count) buckets, interpolated linearly
    inside the bucket as PromQL's ``histogram_quantile`` does."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # the top bucket has no upper edge: its lower one
            inside = count - lower_count
            share = (rank - lower_count) / inside if inside > 0 else 1.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return buckets[-1][0]


def summary(registry: CollectorRegistry) -> dict[str, Any]:
    """Since the gateway started (all workers): requests by outcome, hit ratio, latency
    p50/p99 overall and for hits. For the built-in page; dashboards use PromQL."""
    outcomes: dict[str, float] = {"hit": 0.0, "miss": 0.0, "bypass": 0.0, "error": 0.0}
    latency: dict[str, dict[float, float]] = {}
    for family in _exposed(registry).collect():
        for sample in family.samples:
            if sample.name == "vetcache_requests_total":
                outcome = sample.labels.get("outcome", "")
                outcomes[outcome] = outcomes.get(outcome, 0.0) + sample.value
            elif sample.name == "vetcache_request_duration_seconds_bucket":
                bound = float(sample.labels["le"])
                for group in ("all", sample.labels.get("outcome", "")):
                    per = latency.setdefault(group, {})
                    per[bound] = per.get(bound, 0.0) + sample.value
    served = outcomes["hit"] + outcomes["miss"]

    def percentiles(group: str) -> dict[str, float | None]:
        buckets = list(latency.get(group, {}).items())
        return {"p50": quantile(0.5, buckets), "p99": quantile(0.99, buckets)}

    return {
        "requests": {k: int(v) for k, v in outcomes.items()},
        "hit_ratio": outcomes["hit"] / served if served else None,
        "latency_s": percentiles("all"),
        "hit_latency_s": percentiles("hit"),
    }


class VerdictWindow:
    """Verdicts of the last ``window_s`` seconds, fetched incrementally: each refresh asks
    the ledger only for verdicts newer than the last it saw (verdicts never change; a
    review is a new verdict), so refreshing costs the new verdicts, not the window."""

    SLACK_S = 5.0
    """Verdicts written by other processes with a slightly older clock are still seen."""

    def __init__(self, window_s: int) -> None:
        self.window_s = window_s
        self._verdicts: dict[str, Verdict] = {}
        self._newest = 0.0

    async def refresh(self, auditor: Auditor, now: float | None = None) -> dict[str, FPRate]:
        """FP rate per namespace over the window, after taking in new verdicts."""
        now = time.time() if now is None else now
        since = max(now - self.window_s, self._newest - self.SLACK_S)
        for verdict in await auditor.ledger.query(since=since, limit=None):
            self._verdicts[verdict.id] = verdict
            self._newest = max(self._newest, verdict.created_at)
        start = now - self.window_s
        self._verdicts = {i: v for i, v in self._verdicts.items() if v.created_at >= start}
        by_namespace: dict[str, list[Verdict]] = {}
        for verdict in self._verdicts.values():
            by_namespace.setdefault(verdict.job.namespace, []).append(verdict)
        return {namespace: fp_rate(found) for namespace, found in by_namespace.items()}


class MetricsRefresher:
    """Keeps the shared-state gauges current, every ``refresh_s``; failures are logged once
    per streak and leave the last values in place."""

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
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._failing = False

    async def refresh(self) -> None:
        """Refresh every gauge once."""
        from audit import LedgerError, QueueError
        from cache import StoreError

        if self.auditor is not None:  # in memory: known even while Redis is down
            self.metrics.spilled.set(len(self.auditor.spill))
        try:
            if self.cache is not None:
                cache = self.cache
                self.metrics.set_thresholds(cache.settings.threshold, cache.thresholds())
                limit = self.metrics.max_namespaces
                self.metrics.set_entries(await cache.store.sizes(limit))
            if self.auditor is not None:
                self.metrics.queue_depth.set(await self.auditor.queue.depth())
                self.metrics.set_fp_rates(await self.window.refresh(self.auditor))
        except (StoreError, LedgerError, QueueError) as exc:
            if not self._failing:
                log.warning("metrics refresh failed: %s", type(exc).__name__)
            self._failing = True
            return
        self._failing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._forever(), name="vetcache-metrics")

    async def _forever(self) -> None:
        while not self._stop.is_set():
            await self.refresh()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.settings.refresh_s)

    async def stop(self) -> None:
        """Stop the loop. It also watches a stop flag: redis-py (8.1, seen here) can swallow
        a task's cancellation mid-command, and a loop that relied on ``cancel()`` alone then
        ran on and held up the app's shutdown."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=5.0)
