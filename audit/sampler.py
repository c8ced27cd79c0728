"""Which served hits and near-misses get audited."""

from __future__ import annotations

import random
from collections import OrderedDict

from audit.settings import AuditSettings

_TRACKED_ENTRIES = 100_000


class Sampler:
    """Burn-in first (the first ``burn_in`` hits of every entry), then a per-namespace rate;
    near-misses at their own rate. Burn-in counts live in this process (bounded LRU), so each
    replica audits an entry's first hits it serves."""

    def __init__(self, settings: AuditSettings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self._rng = rng or random.Random()  # noqa: S311 - sampling, not security
        self._hits: OrderedDict[str, int] = OrderedDict()

    def hit(self, namespace: str, entry_id: str) -> bool:
        """Whether to audit this hit."""
        seen = self._hits.pop(entry_id, 0) + 1
        self._hits[entry_id] = seen
        if len(self._hits) > _TRACKED_ENTRIES:
            self._hits.popitem(last=False)
        if seen <= self.settings.burn_in:
            return True
        return self._rng.random() < self.settings.sample_rate_for(namespace)

    def near_miss(self, similarity: float, threshold: float) -> bool:
        """Whether to audit a miss whose best candidate was just under the threshold."""
        if not threshold - self.settings.near_miss_band <= similarity < threshold:
            return False
        return self._rng.random() < self.settings.near_miss_rate
