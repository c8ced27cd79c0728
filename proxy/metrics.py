"""Prometheus metrics, declared on a registry the app is given (nothing registers globally).

``Metrics`` is the observer the cache and the audit path report to, plus what the chat
service counts. Gauges that summarise shared state (queue depth, FP rate, thresholds,
entries; FP rate per cohort in ``proxy.cohort_metrics``) are set by ``proxy.refresher``;
``proxy.exposition`` renders ``/metrics`` (every worker's samples with ``--workers N``).
Audit workers expose their own ``/metrics`` on ``--metrics-port`` (9102): scrape both.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from audit.observe import AuditObserver
from audit.schema import AuditJob, Verdict, job_kind
from audit.stats import FPRate
from cache import Lookup, Outcome
from proxy.cohort_metrics import CohortGauges
from proxy.logs import note_stage
from proxy.speculation import SpeculativeCalls
from proxy.tracing import Tracing
from proxy.version_metrics import VersionGauges

if TYPE_CHECKING:
    from audit.autopilot import Move
    from proxy.views import Views

# Every counter and histogram child would also export a ``_created`` timestamp series:
# nearly half the page, read by no rule or panel. Off for the process, as most exporters do.
disable_created_metrics()  # type: ignore[no-untyped-call]

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
SCORE_BUCKETS = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0)

OTHER = "_other"
"""Label for namespaces past a tenant's share of ``max_namespaces`` (the header is
client-controlled)."""
DEFAULT = "_default"
"""``namespace`` label of the default threshold."""


class Metrics(AuditObserver):
    """Every vetcache metric, registered on ``registry``."""

    def __init__(
        self,
        registry: CollectorRegistry,
        max_namespaces: int = 200,
        tracing: Tracing | None = None,
        tenants: int = 1,
    ) -> None:
        """``tracing`` makes each timed stage a span too (``vetcache.<stage>``); ``tenants``
        (how many the keys name) splits ``max_namespaces`` into equal shares."""
        self.registry = registry
        self.max_namespaces = max_namespaces
        self.share = max(1, max_namespaces // max(1, tenants))
        self.tracing = tracing or Tracing.off()
        self._namespaces: set[str] = set()
        self._claimed: dict[str, int] = {}  # tenant -> namespaces it brought in
        self._fp_exported: set[str] = set()  # namespaces whose FP rate was ever exported
        self._declare_requests(registry)
        self._declare_cache(registry)
        self._declare_audits(registry)
        self._declare_shared_state(registry)
        self._declare_views(registry)
        self.cohorts = CohortGauges(registry, self.namespace, OTHER)
        self.versions = VersionGauges(registry, self.namespace, OTHER)
        self.speculation = SpeculativeCalls(registry, self.namespace)

    def _declare_requests(self, r: CollectorRegistry) -> None:
        """What each chat request counts."""
        self.requests = Counter(
            "vetcache_requests_total",
            "Chat requests by outcome: hit, miss, bypass, fail_open (the cache failed, the "
            "upstream answered), error (the request failed).",
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
            "Time per stage: lookup (the whole cache lookup, bounded by its budget), exact_lookup, "
            "embed, vector_search, upstream, admit, judge.",
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

    def _declare_cache(self, r: CollectorRegistry) -> None:
        """What the cache and its serving policy did."""
        self.cache_errors = Counter(
            "vetcache_cache_errors_total",
            "Cache failures that fell open (store, embedder, timeout, shed, audit).",
            ["kind"],
            registry=r,
        )
        self.refusals = Counter(
            "vetcache_refused_total",
            "Candidates the serving policy refused although their similarity alone would not "
            "have (reason: neighbourhood, entry_bar, quarantined, embedder, stale, or a check's "
            "name: contrast).",
            ["namespace", "reason"],
            registry=r,
        )
        self.shadow_lookups = Counter(
            "vetcache_shadow_lookups_total",
            "Lookups in shadow mode (always answered upstream): would_hit or would_miss.",
            ["namespace", "outcome"],
            registry=r,
        )
        self.verifier_verdicts = Counter(
            "vetcache_verifier_verdicts_total",
            "The learned verifier's verdicts on candidates in its band: agree, refuse (in "
            "shadow mode: would refuse), timeout, error (mode: serve or shadow).",
            ["verdict", "mode"],
            registry=r,
        )
        self.verifier_duration = Histogram(
            "vetcache_verifier_duration_seconds",
            "Time a candidate waited for the learned verifier (queue and model).",
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.verifier_score = Histogram(
            "vetcache_verifier_score",
            "The learned verifier's scores (0-1) of candidates in its band.",
            ["mode"], buckets=SCORE_BUCKETS, registry=r,
        )  # fmt: skip
        self.autopilot_moves = Counter(
            "vetcache_autopilot_moves_total",
            "Threshold moves the autopilot made (direction: up or down).",
            ["namespace", "direction"],
            registry=r,
        )

    def _declare_audits(self, r: CollectorRegistry) -> None:
        """The audit path: jobs, verdicts, lag, the spill."""
        self.jobs = Counter(
            "vetcache_audit_jobs_total",
            "Audit jobs queued (kind: hit, exact, near_miss, shadow: a would-be hit, admission).",
            ["namespace", "kind"],
            registry=r,
        )
        self.verdicts = Counter(
            "vetcache_audit_verdicts_total",
            "Verdicts recorded, by judge (review/feedback: labels from outside).",
            ["namespace", "verdict", "judge", "kind"],
            registry=r,
        )
        self.lag = Histogram(
            "vetcache_audit_lag_seconds",
            "Time from queueing an audit job to its verdict.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.spilled = Gauge(
            "vetcache_audit_spilled_jobs",
            "Audit jobs held in this process while the queue is unreachable.",
            registry=r,
            multiprocess_mode="livesum",
        )

    def _declare_shared_state(self, r: CollectorRegistry) -> None:
        """Gauges of state every replica shares (set by ``proxy.refresher``; in multiprocess
        mode the most recent write counts)."""

        def shared(name: str, documentation: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, documentation, labels, registry=r, multiprocess_mode="mostrecent")

        per_namespace = ("namespace",)
        self.queue_depth = shared("vetcache_audit_queue_depth", "Audit jobs waiting.")
        self.fp_rate = shared(
            "vetcache_false_positive_rate",
            "False-positive rate of served hits over the window.",
            per_namespace,
        )
        self.fp_upper = shared(
            "vetcache_false_positive_rate_upper",
            "Wilson 95% upper bound of the false-positive rate.",
            per_namespace,
        )
        self.fp_lower = shared(
            "vetcache_false_positive_rate_lower",
            "Wilson 95% lower bound of the false-positive rate.",
            per_namespace,
        )
        self.fp_labelled = shared(
            "vetcache_false_positive_labelled",
            "Labelled served hits (correct + false_positive) behind the FP rate.",
            per_namespace,
        )
        self.threshold = shared(
            "vetcache_threshold",
            "Similarity threshold in force per namespace (_default: the default).",
            per_namespace,
        )
        self.entries = shared(
            "vetcache_cache_entries", "Live cache entries per namespace.", per_namespace
        )

    def _declare_views(self, r: CollectorRegistry) -> None:
        """Convenience views of the request counters over ``metrics.view_window_s`` (set by
        ``proxy.refresher`` from ``proxy.views``), for reading ``/metrics`` by hand."""
        self.hit_ratio = Gauge(
            "vetcache_hit_ratio",
            "Hits / lookups (hit, miss, fail_open) over the view window; NaN without lookups. "
            "A view of vetcache_requests_total.",
            ["namespace"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.p99 = Gauge(
            "vetcache_request_duration_p99_seconds",
            "p99 request time of hits and of misses over the view window; NaN without "
            "requests. A view of vetcache_request_duration_seconds.",
            ["outcome"],
            registry=r,
            multiprocess_mode="mostrecent",
        )

    def set_views(self, views: Views) -> None:
        """The windowed hit ratios and p99s (labels as the counters have them)."""
        for label, ratio in views.hit_ratio.items():
            self.hit_ratio.labels(label).set(math.nan if ratio is None else ratio)
        for outcome, seconds in views.p99_s.items():
            self.p99.labels(outcome).set(math.nan if seconds is None else seconds)

    def namespace(self, name: str, tenant: str | None = None) -> str:
        """The label for ``name``: itself once known, else ``OTHER``. A tenant's traffic
        makes a namespace known while that tenant has brought in fewer than its share
        (``max_namespaces`` / tenants): first come first served across tenants let one
        tenant's junk namespaces take every label and hide another's real ones. Without a
        tenant (gauges of shared state) only known namespaces are labelled."""
        if name in self._namespaces:
            return name
        if tenant is None or self._claimed.get(tenant, 0) >= self.share:
            return OTHER
        self._claimed[tenant] = self._claimed.get(tenant, 0) + 1
        self._namespaces.add(name)
        return name

    def operator_namespace(self, name: str) -> str:
        """The label of a namespace the operator named (a threshold, the autopilot's):
        always itself; no client can add to these."""
        self._namespaces.add(name)
        return name

    # What the routes and the chat service count.

    def request(
        self,
        namespace: str,
        model: str,
        outcome: Outcome,
        seconds: float,
        similarity: float | None = None,
        tenant: str | None = None,
    ) -> None:
        """One chat request of ``tenant`` finished."""
        self.requests.labels(self.namespace(namespace, tenant), model, outcome.value).inc()
        self.duration.labels(outcome.value).observe(seconds)
        if similarity is not None and outcome in (Outcome.HIT, Outcome.MISS):
            self.similarity.labels(outcome.value).observe(similarity)

    def lookup(
        self, namespace: str, lookup: Lookup, shadow_mode: bool, tenant: str | None = None
    ) -> None:
        """What the serving policy decided: a refusal and its reason; in shadow mode, whether
        the lookup would have been served."""
        if lookup.refused is not None:
            self.refusals.labels(self.namespace(namespace, tenant), lookup.refused).inc()
        if shadow_mode and lookup.outcome != Outcome.FAIL_OPEN:
            outcome = "would_hit" if lookup.shadow else "would_miss"
            self.shadow_lookups.labels(self.namespace(namespace, tenant), outcome).inc()

    def saved(self, namespace: str, tokens: int, usd: float, tenant: str | None = None) -> None:
        """A hit of ``tenant`` saved ``tokens`` tokens costing ``usd``."""
        label = self.namespace(namespace, tenant)
        if tokens > 0:
            self.tokens_saved.labels(label).inc(tokens)
        if usd > 0:
            self.cost_saved.labels(label).inc(usd)

    def autopilot_move(self, move: Move) -> None:
        label = self.operator_namespace(move.namespace)
        self.autopilot_moves.labels(label, move.direction).inc()
        self.threshold.labels(label).set(move.new)

    # Observer hooks (cache and audit).

    def stage(self, stage: str, seconds: float) -> None:
        self.stages.labels(stage).observe(seconds)
        note_stage(stage, seconds)  # and into the request's access line

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Time the block as ``stage``; with tracing on, also as the span ``vetcache.<stage>``
        (a child of the request's span)."""
        with self.tracing.span(f"vetcache.{stage}"), super().timed(stage):
            yield

    def cache_error(self, kind: str) -> None:
        self.cache_errors.labels(kind).inc()

    def verified(self, verdict: str, mode: str, score: float | None, seconds: float) -> None:
        self.verifier_verdicts.labels(verdict, mode).inc()
        self.verifier_duration.observe(seconds)
        if score is not None:
            self.verifier_score.labels(mode).observe(score)

    def job_queued(self, job: AuditJob) -> None:
        self.jobs.labels(self.namespace(job.namespace, job.tenant), job_kind(job)).inc()

    def verdict_recorded(self, verdict: Verdict) -> None:
        job = verdict.job
        kind = job_kind(job)
        self.verdicts.labels(
            self.namespace(job.namespace, job.tenant),
            verdict.verdict,
            verdict.judge or verdict.source,
            kind,
        ).inc()
        if verdict.source == "judge" and job.queued_at:
            self.lag.observe(max(0.0, verdict.created_at - job.queued_at))

    # Shared state, set by the refresher.

    def set_fp_rates(self, rates: dict[str, FPRate]) -> None:
        """The FP rate per namespace over the window. A namespace exported before whose
        window now holds no labels (its verdicts aged out, or none is correct or
        false_positive) exports NaN with ``labelled`` 0, never its last rate: a stale 0.8
        two hours after every verdict left the window would page someone for nothing, and
        a stale 0.01 would hide a spike. NaN, not removal: prometheus-client cannot remove
        a label set in multiprocess mode (``--workers N``), and NaN fails every threshold
        comparison, so no alert fires on it."""
        fresh: set[str] = set()
        for namespace, rate in rates.items():
            label = self.namespace(namespace)
            if label == OTHER or rate.rate is None or not rate.labelled:
                continue
            fresh.add(label)
            self.fp_rate.labels(label).set(rate.rate)
            self.fp_upper.labels(label).set(rate.upper)
            self.fp_lower.labels(label).set(rate.lower)
            self.fp_labelled.labels(label).set(rate.labelled)
        for label in self._fp_exported - fresh:
            for gauge in (self.fp_rate, self.fp_upper, self.fp_lower):
                gauge.labels(label).set(math.nan)
            self.fp_labelled.labels(label).set(0)
        self._fp_exported |= fresh

    def set_thresholds(self, default: float, per_namespace: dict[str, float]) -> None:
        self.threshold.labels(DEFAULT).set(default)
        for namespace, value in per_namespace.items():
            self.threshold.labels(self.operator_namespace(namespace)).set(value)

    def set_entries(self, sizes: dict[str, int]) -> None:
        for namespace, size in sizes.items():
            label = self.namespace(namespace)
            if label != OTHER:
                self.entries.labels(label).set(size)
