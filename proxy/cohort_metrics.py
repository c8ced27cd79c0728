"""The FP rate cut by what the prompt was (language, length, similarity band, judge, model)
and of shadow mode's would-be hits: gauges set by ``proxy.refresher`` from the verdict
window's ``audit.stats.FPBreakdown``. Each label takes values from a small fixed set
(``audit.stats.cohort``), so the series stay bounded whatever the traffic.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge

from audit.stats import FPBreakdown, FPRate

DIMENSIONS = ("language", "length", "similarity", "judge", "model")
"""The cohorts exported (``audit.stats.cohort``)."""
MAX_COHORTS = 32
"""Values per dimension exported at most (models are an operator's aliases; the rest are
fixed sets well under it)."""

Gauges = tuple[Gauge, Gauge | None, Gauge]
"""Rate, upper bound (if any), labelled count."""


class CohortGauges:
    """FP rate per cohort and of shadow mode, on ``registry``."""

    def __init__(
        self, registry: CollectorRegistry, namespace: Callable[[str], str], other: str
    ) -> None:
        """``namespace`` maps a namespace to its label (``Metrics.namespace``), ``other``
        for one that has none of its own (left out)."""

        def shared(name: str, documentation: str, labels: tuple[str, ...]) -> Gauge:
            return Gauge(
                name, documentation, labels, registry=registry, multiprocess_mode="mostrecent"
            )

        cohort = ("dimension", "cohort")
        self.cohort: Gauges = (
            shared(
                "vetcache_cohort_false_positive_rate",
                "False-positive rate of served hits over the window per cohort (dimension: "
                "language, length, similarity, judge, model); NaN with no labels.",
                cohort,
            ),
            shared(
                "vetcache_cohort_false_positive_rate_upper",
                "Wilson 95% upper bound of a cohort's false-positive rate; NaN with no labels.",
                cohort,
            ),
            shared(
                "vetcache_cohort_false_positive_labelled",
                "Labelled served hits behind a cohort's false-positive rate.",
                cohort,
            ),
        )
        self.shadow: Gauges = (
            shared(
                "vetcache_shadow_false_positive_rate",
                "False-positive rate shadow mode's would-be hits would have had over the "
                "window; NaN with no labels.",
                ("namespace",),
            ),
            None,
            shared(
                "vetcache_shadow_false_positive_labelled",
                "Labelled would-be hits behind the shadow false-positive rate.",
                ("namespace",),
            ),
        )
        self._namespace = namespace
        self._other = other
        self._cohorts: set[tuple[str, ...]] = set()
        self._namespaces: set[tuple[str, ...]] = set()

    def set(self, breakdown: FPBreakdown) -> None:
        """Every gauge from the window's breakdown. A cohort or namespace exported before
        that has no labels now reads NaN with ``labelled`` 0, never its last value."""
        cohorts: dict[tuple[str, ...], FPRate] = {}
        for dimension in DIMENSIONS:
            values = sorted(breakdown.cohorts.get(dimension, {}).items())
            for value, rate in values[:MAX_COHORTS]:
                cohorts[(dimension, value)] = rate
        self._cohorts = _set_all(self.cohort, cohorts, self._cohorts)
        shadow: dict[tuple[str, ...], FPRate] = {}
        for namespace, rate in breakdown.shadow.items():
            label = self._namespace(namespace)
            if label != self._other:
                shadow[(label,)] = rate
        self._namespaces = _set_all(self.shadow, shadow, self._namespaces)


def _set_all(
    gauges: Gauges, rates: dict[tuple[str, ...], FPRate], before: set[tuple[str, ...]]
) -> set[tuple[str, ...]]:
    """Set ``rates``, and NaN / 0 for label sets set ``before`` and now gone; returns every
    label set exported."""
    for labels, rate in rates.items():
        _set(gauges, labels, rate)
    for labels in before - rates.keys():
        _set(gauges, labels, None)
    return before | rates.keys()


def _set(gauges: Gauges, labels: tuple[str, ...], rate: FPRate | None) -> None:
    """Rate, upper bound and labelled count; NaN and 0 without labels."""
    value, upper, labelled = gauges
    if rate is None or rate.rate is None:
        value.labels(*labels).set(math.nan)
        if upper is not None:
            upper.labels(*labels).set(math.nan)
        labelled.labels(*labels).set(0)
        return
    value.labels(*labels).set(rate.rate)
    if upper is not None:
        upper.labels(*labels).set(rate.upper)
    labelled.labels(*labels).set(rate.labelled)
