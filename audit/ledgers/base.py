"""The verdict ledger interface."""

from __future__ import annotations

from abc import ABC, abstractmethod

from pydantic import BaseModel

from audit.schema import AuditJob, Verdict, VerdictKind


class LedgerError(Exception):
    """The ledger is unreachable or failed."""


class Served(BaseModel):
    """A hit as served, kept for feedback: the pair and the key that asked."""

    job: AuditJob
    """The served pair, in the shape an audit job has."""
    key_id: str | None
    """Which gateway key made the request (only it may give feedback)."""


class Ledger(ABC):
    """Verdicts, newest first, bounded; one judge verdict per job id."""

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Prepare."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    @abstractmethod
    async def record(self, verdict: Verdict) -> bool:
        """Keep ``verdict``. A judge verdict for a job that already has one is dropped
        (returns False): a job delivered twice is judged and counted once."""

    @abstractmethod
    async def get(self, verdict_id: str) -> Verdict | None:
        """One verdict."""

    @abstractmethod
    async def query(
        self,
        *,
        namespace: str | None = None,
        verdict: VerdictKind | None = None,
        since: float = 0.0,
        limit: int | None = 100,
    ) -> list[Verdict]:
        """Verdicts at or after ``since``, newest first, filtered."""

    @abstractmethod
    async def remember(self, served: Served, ttl_s: int) -> None:
        """Keep a served hit for feedback for ``ttl_s``."""

    @abstractmethod
    async def served(self, request_id: str) -> Served | None:
        """The hit served to ``request_id``, if still remembered."""
