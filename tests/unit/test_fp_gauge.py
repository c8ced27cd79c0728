"""The exported FP rate follows its window: once every label has left it, a scrape shows
NaN with ``labelled`` 0, never the last rate (issue 18: 0.8 was still exported two hours
after every verdict had aged out)."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from audit.auditor import Auditor
from audit.errors import LedgerError
from audit.ledgers.memory import MemoryLedger
from audit.queues.memory import MemoryQueue
from audit.schema import AuditJob, Verdict, VerdictKind
from audit.settings import AuditSettings
from audit.window import VerdictWindow
from cache.stores.memory import MemoryStore
from proxy.metrics import Metrics
from proxy.refresher import MetricsRefresher
from proxy.settings import MetricsSettings

NOW = time.time()


def verdict(namespace: str, kind: VerdictKind, at: float) -> Verdict:
    job = AuditJob(
        job_id=uuid.uuid4().hex, request_id=uuid.uuid4().hex, entry_id="e", new_prompt="n",
        cached_prompt="c", cached_answer="a", similarity=0.93, threshold=0.9,
        namespace=namespace, model="fake-gpt",
    )  # fmt: skip
    return Verdict(id=job.job_id, job=job, verdict=kind, judge="contrast/2", created_at=at)


def scrape(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    """The FP gauges of a real exposition, by (name, namespace)."""
    text = generate_latest(registry).decode()
    return {
        (s.name, s.labels["namespace"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("vetcache_false_positive")
    }


async def test_a_rate_with_no_labels_in_its_window_is_nan_with_labelled_zero() -> None:
    ledger = [verdict("shop", "false_positive", NOW) for _ in range(4)]
    ledger.append(verdict("shop", "correct", NOW))

    async def since(start: float) -> list[Verdict]:
        return [v for v in ledger if v.created_at >= start]

    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.namespace("shop", "tenant")
    window = VerdictWindow(3600)
    metrics.set_fp_rates(await window.refresh(since, now=NOW + 1))
    assert scrape(registry)[("vetcache_false_positive_rate", "shop")] == 0.8
    # Two hours on, every verdict has left the one-hour window.
    metrics.set_fp_rates(await window.refresh(since, now=NOW + 7200))
    page = scrape(registry)
    for name in ("rate", "rate_lower", "rate_upper"):
        assert math.isnan(page[(f"vetcache_false_positive_{name}", "shop")])
    assert page[("vetcache_false_positive_labelled", "shop")] == 0
    # Verdicts in the window but none labelled (uncertain): still no rate.
    ledger.append(verdict("shop", "uncertain", NOW + 7000))
    metrics.set_fp_rates(await window.refresh(since, now=NOW + 7200))
    assert math.isnan(scrape(registry)[("vetcache_false_positive_rate", "shop")])
    # New labels bring the rate back.
    ledger.append(verdict("shop", "correct", NOW + 7100))
    metrics.set_fp_rates(await window.refresh(since, now=NOW + 7200))
    page = scrape(registry)
    assert page[("vetcache_false_positive_rate", "shop")] == 0.0
    assert page[("vetcache_false_positive_labelled", "shop")] == 1


async def test_verdicts_held_age_out_while_the_ledger_is_unreachable() -> None:
    window = VerdictWindow(3600)
    fetched = [verdict("shop", "false_positive", NOW)]

    async def since(start: float) -> list[Verdict]:
        return fetched

    assert (await window.refresh(since, now=NOW + 1))["shop"].rate == 1.0
    assert window.held(now=NOW + 60)["shop"].labelled == 1  # no fetch needed
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.namespace("shop", "tenant")
    metrics.set_fp_rates(window.held(now=NOW + 60))
    metrics.set_fp_rates(window.held(now=NOW + 7200))  # the refresher's path on AuditError
    assert window.held(now=NOW + 7200) == {}
    assert math.isnan(scrape(registry)[("vetcache_false_positive_rate", "shop")])


class DownLedger(MemoryLedger):
    """A ledger that can become unreachable."""

    down = False

    async def query(self, **kwargs: Any) -> list[Verdict]:
        if self.down:
            raise LedgerError("ledger down")
        return await super().query(**kwargs)


async def test_the_refresher_ages_the_rate_out_while_the_ledger_is_down() -> None:
    ledger = DownLedger()
    await ledger.record(verdict("shop", "false_positive", time.time() - 59.5))
    auditor = Auditor(AuditSettings(), MemoryQueue(), ledger, MemoryStore(), run_worker=False)
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.namespace("shop", "tenant")
    refresher = MetricsRefresher(metrics, MetricsSettings(fp_window_s=60), None, auditor)
    await refresher.refresh()
    assert scrape(registry)[("vetcache_false_positive_rate", "shop")] == 1.0
    ledger.down = True
    await asyncio.sleep(0.6)  # the one verdict leaves the 60 s window
    await refresher.refresh()
    assert math.isnan(scrape(registry)[("vetcache_false_positive_rate", "shop")])
    assert scrape(registry)[("vetcache_false_positive_labelled", "shop")] == 0
