"""``RolloutSettings`` (``cache.rollout`` in the config): how a namespace moves from the
embedding version it serves to another (``cache.rollout``; ``vetcache rollout``).

While a namespace migrates, its admissions are written under both versions and a share of
its lookups is repeated under the target after the answer (shadow): would it have hit, the
same entry, and did the judge find its would-be hits right. A cutover is refused until the
migration is done, the target passed the margin gate, and the shadow numbers hold.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from cache.migration import DEFAULT_RATE_PER_S


class RolloutSettings(BaseModel):
    """The rates, bars and retention of a rollout."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    shadow_rate: float = Field(default=0.25, ge=0.0, le=1.0)
    """Share of a migrating namespace's lookups repeated under the target version, after the
    answer is sent (an embedding and a search each: CPU the hit path shares)."""
    migration_rate: float = Field(default=DEFAULT_RATE_PER_S, gt=0)
    """Entries re-embedded per second by ``vetcache rollout migrate`` (its default
    ``--rate``): the embedder shares the gateway's CPU when they run on one machine
    (measured in docs/performance.md#migration)."""
    retention_s: int = Field(default=7 * 86400, ge=0)
    """How long the version served before a cutover keeps its entries (and may be rolled
    back to); each entry still ends at its own TTL."""
    min_shadow_lookups: int = Field(default=100, ge=0)
    """Shadow lookups a cutover needs, at least."""
    min_judged: int = Field(default=20, ge=0)
    """Judged would-be hits of the target a cutover needs, at least."""
    max_fp: float = Field(default=0.05, ge=0.0, le=1.0)
    """Highest FP share of the target's judged would-be hits a cutover accepts."""
    max_fp_increase: float = Field(default=0.02, ge=0.0, le=1.0)
    """How much higher than the serving version's (same window) it may be."""
    max_hit_drop: float = Field(default=0.05, ge=0.0, le=1.0)
    """How much lower the target's would-hit rate may be than the serving version's hit
    rate on the same shadow lookups."""
