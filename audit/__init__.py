"""Vetting hits: sampler, job queue, judges, verdicts, FP-rate estimation.

Public API: ``Auditor`` (the gateway's side: sample and queue after each lookup, and the
verbs its routes use: label, verdicts, FP rates, tune) built by ``build_auditor``,
``AuditWorker`` (judge, record once, act) and ``serve_worker`` (a standalone worker on
Redis), ``AuditSettings``, the models ``AuditJob``, ``Judgement``, ``Verdict``, the errors
(``audit.errors``), and ``fp_rate``. ``audit`` never imports ``proxy``.
"""

from __future__ import annotations

from audit.auditor import Auditor
from audit.backends import build_queue_and_ledger
from audit.errors import AuditError, InputError, LedgerError, QueueError, QueueUnusable
from audit.judges import build_judge
from audit.ledgers.base import Ledger, Served
from audit.observe import NULL_AUDIT_OBSERVER, AuditObserver
from audit.queues.base import JobQueue
from audit.schema import AuditJob, Judgement, Verdict
from audit.settings import AuditSettings
from audit.stats import FPRate, cohort, fp_rate, wilson
from audit.worker import AuditWorker
from audit.worker_process import serve_worker
from cache.stores.base import Store


def build_auditor(
    settings: AuditSettings,
    redis_url: str | None,
    store: Store,
    run_worker: bool | None = None,
    observer: AuditObserver = NULL_AUDIT_OBSERVER,
    *,
    redis_cluster: bool = False,
) -> Auditor:
    """The gateway's auditor. Without Redis it runs its own worker (the embedded default);
    with Redis, ``vetcache audit-worker`` processes do the judging unless ``run_worker``."""
    queue, ledger = build_queue_and_ledger(settings, redis_url, redis_cluster=redis_cluster)
    worker = run_worker if run_worker is not None else not redis_url
    return Auditor(settings, queue, ledger, store, run_worker=worker, observer=observer)


__all__ = [
    "AuditError",
    "AuditJob",
    "AuditObserver",
    "AuditSettings",
    "AuditWorker",
    "Auditor",
    "FPRate",
    "InputError",
    "JobQueue",
    "Judgement",
    "Ledger",
    "LedgerError",
    "QueueError",
    "QueueUnusable",
    "Served",
    "Verdict",
    "build_auditor",
    "build_judge",
    "build_queue_and_ledger",
    "cohort",
    "fp_rate",
    "serve_worker",
    "wilson",
]
