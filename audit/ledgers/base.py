"""The verdict ledger interface."""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod

from pydantic import BaseModel

from audit.schema import AuditJob, HardNegative, Verdict, VerdictKind


class Served(BaseModel):
    """A hit as served, kept for feedback: the pair and the key that asked."""

    job: AuditJob
    """The served pair, in the shape an audit job has."""
    key_id: str | None
    """Which gateway key made the request (only it may give feedback)."""

    @property
    def ref(self) -> str:
        """What the hit is remembered under: ``served_ref`` of its tenant, key and request id."""
        return served_ref(self.job.tenant, self.key_id, self.job.request_id)


def served_ref(tenant: str, key_id: str | None, request_id: str) -> str:
    """A served hit's identity for feedback: the tenant and key that asked, and the request
    id. A client chooses its ``x-request-id``, so the id alone let another tenant (or key)
    reusing it overwrite the record, and take away the right to label the first hit. Hashed:
    a tenant name is any string, and the ref names a Redis key."""
    parts = (tenant, key_id or "", request_id)
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


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
    async def remember(self, served: Served, ttl_s: int) -> int:
        """Keep a served hit for feedback for ``ttl_s``, and count its lookup as
        ``count_lookup`` does (one round trip for both); return how many times its entry has
        been served so far (shared by every replica on one ledger: burn-in counts it)."""

    @abstractmethod
    async def served(self, ref: str) -> Served | None:
        """The hit remembered under ``ref`` (``Served.ref``), if still remembered."""

    @abstractmethod
    async def add_hard_negative(self, pair: HardNegative) -> None:
        """Keep ``pair`` (once per pair id; a newer label replaces the older), bounded."""

    @abstractmethod
    async def drop_hard_negative(self, pair_id: str) -> None:
        """Forget a pair someone has since labelled correct."""

    @abstractmethod
    async def hard_negatives(
        self, *, namespace: str | None = None, limit: int | None = 1000
    ) -> list[HardNegative]:
        """Stored hard negatives, newest first."""

    @abstractmethod
    async def lead(self, role: str, owner: str, ttl_s: int) -> bool:
        """Whether ``owner`` holds ``role`` for the next ``ttl_s`` seconds (taking it if
        free, renewing it if already its own): one replica runs the autopilot."""

    @abstractmethod
    async def count_lookup(self, namespace: str, similarity_bin: int) -> None:
        """Count one lookup whose best candidate fell in ``similarity_bin`` (hourly
        histograms, kept ``LOOKUP_HISTORY_H`` hours: the hit rates of ``tune``)."""

    @abstractmethod
    async def lookup_bins(self, namespace: str, hours: int) -> dict[int, int]:
        """Lookups per similarity bin over the last ``hours`` hours."""


LOOKUP_HISTORY_H = 8 * 24
"""Hours of lookup histograms kept."""
NO_CANDIDATE = -1
"""Histogram bin of lookups that found no candidate at all."""


def similarity_bin(similarity: float | None) -> int:
    """The 0.01-wide bin of a similarity (``NO_CANDIDATE`` for none): floor(100 s). The one
    binning of the lookup histograms; a threshold's line is its own bin."""
    if similarity is None:
        return NO_CANDIDATE
    return max(-100, min(100, math.floor(similarity * 100 + 1e-9)))
