"""In-process ledger: the embedded default."""

from __future__ import annotations

import time
from collections import Counter, OrderedDict, defaultdict

from audit.ledgers.base import LOOKUP_HISTORY_H, Ledger, Served, similarity_bin
from audit.schema import HardNegative, Verdict, VerdictKind


class MemoryLedger(Ledger):
    """Verdicts in an ordered dict, oldest dropped past ``retention``."""

    def __init__(self, retention: int = 100_000) -> None:
        self.retention = retention
        self._verdicts: OrderedDict[str, Verdict] = OrderedDict()
        self._judged: set[str] = set()
        self._served: OrderedDict[str, tuple[Served, float]] = OrderedDict()
        self._hits: OrderedDict[str, int] = OrderedDict()
        self._hard: OrderedDict[str, HardNegative] = OrderedDict()
        self._lookups: dict[tuple[str, int], Counter[int]] = defaultdict(Counter)
        self._hour = 0

    async def record(self, verdict: Verdict) -> bool:
        if verdict.source == "judge":
            if verdict.job.job_id in self._judged:
                return False
            self._judged.add(verdict.job.job_id)
        self._verdicts[verdict.id] = verdict
        while len(self._verdicts) > self.retention:
            _, dropped = self._verdicts.popitem(last=False)
            self._judged.discard(dropped.job.job_id)
        return True

    async def get(self, verdict_id: str) -> Verdict | None:
        return self._verdicts.get(verdict_id)

    async def query(
        self,
        *,
        namespace: str | None = None,
        verdict: VerdictKind | None = None,
        since: float = 0.0,
        limit: int | None = 100,
    ) -> list[Verdict]:
        found = [
            v
            for v in reversed(self._verdicts.values())
            if v.created_at >= since
            and (namespace is None or v.job.namespace == namespace)
            and (verdict is None or v.verdict == verdict)
        ]
        return found if limit is None else found[:limit]

    async def remember(self, served: Served, ttl_s: int) -> int:
        self._served[served.ref] = (served, time.time() + ttl_s)
        while len(self._served) > self.retention:
            self._served.popitem(last=False)
        seen = self._hits.pop(served.job.entry_id, 0) + 1
        self._hits[served.job.entry_id] = seen
        while len(self._hits) > self.retention:
            self._hits.popitem(last=False)
        await self.count_lookup(served.job.namespace, similarity_bin(served.job.similarity))
        return seen

    async def served(self, ref: str) -> Served | None:
        found = self._served.get(ref)
        if found is None or found[1] < time.time():
            return None
        return found[0]

    async def add_hard_negative(self, pair: HardNegative) -> None:
        self._hard.pop(pair.pair_id, None)
        self._hard[pair.pair_id] = pair
        while len(self._hard) > self.retention:
            self._hard.popitem(last=False)

    async def drop_hard_negative(self, pair_id: str) -> None:
        self._hard.pop(pair_id, None)

    async def hard_negatives(
        self, *, namespace: str | None = None, limit: int | None = 1000
    ) -> list[HardNegative]:
        pairs = reversed(self._hard.values())
        found = [p for p in pairs if namespace is None or p.namespace == namespace]
        return found if limit is None else found[:limit]

    async def lead(self, role: str, owner: str, ttl_s: int) -> bool:
        return True  # one process: it leads

    async def count_lookup(self, namespace: str, similarity_bin: int) -> None:
        hour = int(time.time() // 3600)
        if hour != self._hour:  # drop hours past the history once an hour, not per lookup
            self._hour = hour
            for stale in [k for k in self._lookups if k[1] <= hour - LOOKUP_HISTORY_H]:
                del self._lookups[stale]
        self._lookups[(namespace, hour)][similarity_bin] += 1

    async def lookup_bins(self, namespace: str, hours: int) -> dict[int, int]:
        hour = int(time.time() // 3600)
        total: Counter[int] = Counter()
        for (name, at), bins in self._lookups.items():
            if name == namespace and at > hour - hours:
                total.update(bins)
        return dict(total)
