"""In-process queue: the embedded default, for one gateway process with its own worker."""

from __future__ import annotations

import asyncio
import itertools

from audit.queues.base import Delivery, JobQueue
from audit.schema import AuditJob


class MemoryQueue(JobQueue):
    """An asyncio queue; jobs live as long as the process."""

    def __init__(self) -> None:
        self._waiting: asyncio.Queue[Delivery] = asyncio.Queue()
        self._taken: dict[str, Delivery] = {}
        self._ids = itertools.count(1)

    async def put(self, job: AuditJob) -> None:
        await self._waiting.put(Delivery(id=str(next(self._ids)), job=job))

    async def take(self, consumer: str, count: int, block_s: float) -> list[Delivery]:
        taken: list[Delivery] = []
        try:
            taken.append(await asyncio.wait_for(self._waiting.get(), block_s))
        except TimeoutError:
            return []
        while len(taken) < count and not self._waiting.empty():
            taken.append(self._waiting.get_nowait())
        self._taken.update((d.id, d) for d in taken)
        return taken

    async def ack(self, delivery_id: str) -> None:
        self._taken.pop(delivery_id, None)

    async def depth(self) -> int:
        return self._waiting.qsize() + len(self._taken)
