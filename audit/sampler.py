"""Which served hits and near-misses get audited."""

from __future__ import annotations

import random

from audit.settings import AuditSettings


class Sampler:
    """Burn-in first (the first ``burn_in`` hits of every entry), then a per-namespace rate;
    near-misses at their own rate. The hit count comes from the ledger, which every replica
    shares, so an entry's first hits are audited once across replicas, not once per replica."""

    def __init__(self, settings: AuditSettings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self._rng = rng or random.Random()  # noqa: S311 - sampling, not security

    def hit_probability(self, namespace: str, seen: int) -> float:
        """The probability that a hit on an entry served ``seen`` times so far (this one
        included) is audited: kept on its job, so the FP estimate can weight its label."""
        if seen <= self.settings.burn_in:
            return 1.0
        return self.settings.sample_rate_for(namespace)

    def hit(self, namespace: str, seen: int) -> bool:
        """Whether to audit a hit on an entry served ``seen`` times so far (this one included)."""
        p = self.hit_probability(namespace, seen)
        return p >= 1.0 or self._rng.random() < p

    def near_miss(self, similarity: float, threshold: float) -> bool:
        """Whether to audit a miss whose best candidate was just under the threshold."""
        if not threshold - self.settings.near_miss_band <= similarity < threshold:
            return False
        return self._rng.random() < self.settings.near_miss_rate
