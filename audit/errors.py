"""The audit package's errors, in one tree.

    AuditError                 base of every error ``audit`` raises
    ├── LedgerError            the verdict ledger is unreachable or failed
    ├── QueueError             the job queue is unreachable or failed
    │   └── QueueUnusable      the queue can never work as configured (e.g. a Redis Cluster
    │                          node without ``redis_cluster``)
    └── InputError             a labelled-pairs file cannot be used; ``errors`` holds one
                               ``FILE[:LINE]: problem`` per bad row

Ledger and queue failures never fail a request: the gateway spills audit jobs and counts
what it could not record (``audit.auditor``). Judges never raise: a failed judgement is an
``error`` verdict. Redis' own exceptions become these in one place:
``cache.redis_client.redis_errors``.
"""

from __future__ import annotations

from collections.abc import Sequence


class AuditError(Exception):
    """Base of every error the audit package raises."""


class LedgerError(AuditError):
    """The ledger is unreachable or failed."""


class QueueError(AuditError):
    """The queue is unreachable or failed."""


class QueueUnusable(QueueError):
    """The queue can never work as configured (e.g. a cluster node without redis_cluster)."""


class InputError(AuditError):
    """The pairs file cannot be used; ``errors`` holds one ``FILE[:LINE]: problem`` each."""

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = list(errors)
