"""The job queue interface: at-least-once delivery with explicit acknowledgement."""

from __future__ import annotations

from abc import ABC, abstractmethod

from pydantic import BaseModel

from audit.schema import AuditJob


class Delivery(BaseModel):
    """One delivery of a job to a worker; ``ack`` it once its verdict is recorded."""

    id: str
    """Delivery id (the stream entry id)."""
    job: AuditJob
    """The job."""


class JobQueue(ABC):
    """Jobs in, deliveries out. A job not acknowledged in time is delivered again."""

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Create what the queue needs (stream, consumer group)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    @abstractmethod
    async def put(self, job: AuditJob) -> None:
        """Queue ``job``."""

    @abstractmethod
    async def take(self, consumer: str, count: int, block_s: float) -> list[Delivery]:
        """Up to ``count`` deliveries for ``consumer``: jobs other consumers took and left
        unacknowledged past the reclaim timeout first, then new ones (waits up to
        ``block_s`` for some)."""

    @abstractmethod
    async def ack(self, delivery_id: str) -> None:
        """The job is done; never deliver it again."""

    @abstractmethod
    async def depth(self) -> int:
        """Jobs waiting or in progress."""
