"""How hits are sampled, judged and acted upon."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from audit.judges.cross_encoder import CrossEncoderSettings
from audit.judges.llm import LLMJudgeSettings

Action = Literal["raise", "quarantine", "none"]


class AutopilotSettings(BaseModel):
    """``audit.autopilot`` in the config."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    namespaces: frozenset[str] = frozenset()
    """Namespaces whose threshold the autopilot may move (none by default)."""
    target_fp: float = Field(default=0.05, gt=0, lt=1)
    """FP rate to stay under."""
    min_threshold: float = Field(default=0.85, ge=-1, le=1)
    """Lowest threshold the autopilot may set."""
    max_threshold: float = Field(default=0.99, ge=-1, le=1)
    """Highest threshold the autopilot may set."""
    max_step: float = Field(default=0.02, gt=0, le=0.2)
    """Largest move up; moves down are a quarter of it."""
    min_new_verdicts: int = Field(default=50, ge=1)
    """Labels needed since the last move before the next one."""
    min_band_labels: int = Field(default=10, ge=1)
    """Labels a move down needs in the band it opens ([new, current)): clean labels above
    the threshold say nothing about the prompts below it."""
    interval_s: float = Field(default=60.0, gt=0)
    """How often to look."""

    @model_validator(mode="after")
    def _bounds_in_order(self) -> AutopilotSettings:
        if self.min_threshold > self.max_threshold:
            raise ValueError("min_threshold must not exceed max_threshold")
        return self


class AuditSettings(BaseModel):
    """The audit path's settings (``audit:`` in the config)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    """Sample and judge hits at all."""
    sample_rate: float = Field(default=0.1, ge=0.0, le=1.0)
    """Share of hits audited after burn-in (``VETCACHE_AUDIT_SAMPLE_RATE``)."""
    namespace_sample_rates: dict[str, float] = Field(default_factory=dict)
    """Per-namespace sample rates."""
    burn_in: int = Field(default=3, ge=0)
    """The first hits of each entry are always audited."""
    near_miss_band: float = Field(default=0.05, ge=0.0, le=1.0)
    """Best candidates this far under the threshold are near-misses."""
    near_miss_rate: float = Field(default=0.1, ge=0.0, le=1.0)
    """Share of near-misses audited (data for tuning below the line)."""
    judge: Literal["contrast", "llm", "cross-encoder"] = "contrast"
    """Which judge decides (``VETCACHE_AUDIT_JUDGE``)."""
    llm: LLMJudgeSettings = LLMJudgeSettings()
    """The ``llm`` judge's model."""
    cross_encoder: CrossEncoderSettings = CrossEncoderSettings()
    """The ``cross-encoder`` judge's model."""
    action: Action = "raise"
    """On a false positive: raise the entry's own bar above it, quarantine the entry, or
    only record it."""
    namespace_actions: dict[str, Action] = Field(default_factory=dict)
    """Per-namespace actions."""
    raise_margin: float = Field(default=0.01, ge=0.0, le=1.0)
    """A false hit at similarity s raises the entry's bar to s + margin."""
    window_s: int = Field(default=3600, ge=60)
    """Window of the false-positive rate."""
    retention: int = Field(default=100_000, ge=100)
    """Verdicts kept (oldest dropped first)."""
    reclaim_after_s: float = Field(default=60.0, gt=0)
    """A job a worker took but did not finish in this long is given to another."""
    consumer_idle_s: float = Field(default=3600.0, gt=0)
    """A worker (a consumer of the Redis Stream's group) silent this long, with no job left in
    hand (its jobs reclaimed by others first), is removed from the group: dead workers do not
    stay registered forever. A live worker that is removed registers again when it reads."""
    worker_batch: int = Field(default=16, ge=1)
    """Jobs a worker takes at once."""
    served_ttl_s: int = Field(default=86400, ge=60)
    """How long a served hit is kept for feedback (and its entry's hit count for burn-in):
    about 0.9 KB of Redis per served hit for this long (tests/bench/soak.py)."""
    spill_max: int = Field(default=10_000, ge=0)
    """Audit jobs a gateway holds in memory while the queue is unreachable, re-queued once
    it is back (beyond it, the oldest are dropped and counted)."""
    autopilot: AutopilotSettings = AutopilotSettings()
    """Threshold autopilot (off unless namespaces are listed)."""

    def sample_rate_for(self, namespace: str) -> float:
        return self.namespace_sample_rates.get(namespace, self.sample_rate)

    def action_for(self, namespace: str) -> Action:
        return self.namespace_actions.get(namespace, self.action)
