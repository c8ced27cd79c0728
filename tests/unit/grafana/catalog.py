"""The metric catalog the dashboard was written against, by hand, and the series that exist:
what ``proxy.metrics.Metrics`` registers and what the recording rules record."""

from __future__ import annotations

from typing import NamedTuple

import yaml
from prometheus_client import CollectorRegistry

from tests.unit.grafana.dashboard import RULES


def series_names(family: str, kind: str) -> set[str]:
    """Series a family exports: prometheus-client reports counters without ``_total``."""
    if kind == "counter":
        return {f"{family}_total"}
    if kind == "histogram":
        return {f"{family}_bucket", f"{family}_sum", f"{family}_count"}
    if kind == "summary":
        return {family, f"{family}_sum", f"{family}_count"}
    if kind == "info":
        return {f"{family}_info"}
    return {family}


def registry_series() -> set[str]:
    """Every series name ``Metrics`` registers."""
    from proxy.metrics import Metrics

    registry = CollectorRegistry()
    Metrics(registry)
    return {
        name for family in registry.collect() for name in series_names(family.name, family.type)
    }


def recorded_names() -> set[str]:
    """``record:`` names of the Prometheus recording rules, if any are there."""
    paths = sorted(RULES.glob("*.yml")) + sorted(RULES.glob("*.yaml")) if RULES.is_dir() else []
    names: set[str] = set()
    for path in paths:
        document = yaml.safe_load(path.read_text()) or {}
        for group in document.get("groups") or []:
            names.update(rule["record"] for rule in group.get("rules") or [] if "record" in rule)
    return names


class Family(NamedTuple):
    name: str
    """As ``registry.collect()`` reports it (counters without ``_total``)."""
    kind: str
    labels: dict[str, tuple[str, ...]]
    """Label names, with the values the synthetic series take."""


NAMESPACES = ("a", "b")
KINDS = ("hit", "near_miss")
REFUSAL_REASONS = ("neighbourhood", "entry_bar", "quarantined", "language", "contrast", "embedder")
COHORTS: dict[str, tuple[str, ...]] = {"dimension": ("language", "length"), "cohort": ("en", "fr")}
OUTCOMES = ("hit", "miss", "bypass", "fail_open", "error")
CATALOG = (
    Family(
        "vetcache_requests",
        "counter",
        {"namespace": NAMESPACES, "model": ("m",), "outcome": OUTCOMES},
    ),
    Family("vetcache_request_duration_seconds", "histogram", {"outcome": OUTCOMES}),
    Family(
        "vetcache_stage_duration_seconds",
        "histogram",
        {"stage": ("exact_lookup", "embed", "vector_search", "upstream", "admit", "judge")},
    ),
    Family("vetcache_similarity", "histogram", {"outcome": ("hit", "miss")}),
    Family("vetcache_audit_jobs", "counter", {"namespace": NAMESPACES, "kind": KINDS}),
    Family(
        "vetcache_audit_verdicts",
        "counter",
        {
            "namespace": NAMESPACES,
            "verdict": ("correct", "false_positive", "uncertain", "error"),
            "judge": ("contrast/2", "review", "feedback"),
            "kind": KINDS,
        },
    ),
    Family("vetcache_audit_queue_depth", "gauge", {}),
    Family("vetcache_audit_lag_seconds", "histogram", {}),
    Family("vetcache_false_positive_rate", "gauge", {"namespace": NAMESPACES}),
    Family("vetcache_false_positive_rate_upper", "gauge", {"namespace": NAMESPACES}),
    Family("vetcache_false_positive_rate_lower", "gauge", {"namespace": NAMESPACES}),
    Family("vetcache_false_positive_labelled", "gauge", {"namespace": NAMESPACES}),
    Family("vetcache_threshold", "gauge", {"namespace": (*NAMESPACES, "_default")}),
    Family("vetcache_cache_entries", "gauge", {"namespace": NAMESPACES}),
    Family("vetcache_tokens_saved", "counter", {"namespace": NAMESPACES}),
    Family("vetcache_cost_saved_usd", "counter", {"namespace": NAMESPACES}),
    Family("vetcache_cache_errors", "counter", {"kind": ("store", "embedder", "timeout", "audit")}),
    Family("vetcache_cohort_false_positive_rate", "gauge", COHORTS),
    Family("vetcache_cohort_false_positive_rate_upper", "gauge", COHORTS),
    Family("vetcache_cohort_false_positive_labelled", "gauge", COHORTS),
    Family("vetcache_shadow_false_positive_rate", "gauge", {"namespace": NAMESPACES}),
    Family("vetcache_shadow_false_positive_labelled", "gauge", {"namespace": NAMESPACES}),
    Family(
        "vetcache_refused",
        "counter",
        {"namespace": NAMESPACES, "reason": REFUSAL_REASONS},
    ),
)
"""The metric catalog, by hand: names, types and labels the dashboard was written against."""
CATALOG_SERIES = {name for f in CATALOG for name in series_names(f.name, f.kind)}
NAMESPACED_SERIES = {
    name for f in CATALOG if "namespace" in f.labels for name in series_names(f.name, f.kind)
}
