"""The audit path's hooks for the gateway's metrics (the default does nothing)."""

from __future__ import annotations

from audit.schema import AuditJob, Verdict
from cache.observe import Observer


class AuditObserver(Observer):
    """Observer of the cache, plus what the audit path does."""

    def job_queued(self, job: AuditJob) -> None:
        """A hit (or near-miss) was queued for a judge."""

    def verdict_recorded(self, verdict: Verdict) -> None:
        """A verdict was kept (once per job for the judge; every outside label)."""


NULL_AUDIT_OBSERVER = AuditObserver()
