"""The audit path's boundary types: what a judge is asked, what it answers, what is kept."""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from audit.trace_context import trace_id

VerdictKind = Literal["correct", "false_positive", "uncertain", "error"]
LabelSource = Literal["judge", "feedback", "review"]


class AuditJob(BaseModel):
    """One served hit (or near-miss) to vet: the new prompt against the cached pair."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    """Unique per job; a judge verdict is recorded once per job id."""
    request_id: str
    """The request that was answered from the cache (or missed it narrowly)."""
    entry_id: str
    """The cache entry that answered it (the nearest one, for a near-miss)."""
    new_prompt: str
    """What the client asked."""
    cached_prompt: str
    """What the cached answer was produced for."""
    cached_answer: str
    """The answer that was served (or would have been)."""
    similarity: float = Field(ge=-1.0, le=1.0)
    """Cosine similarity of the two prompts."""
    threshold: float
    """Threshold in force for the request."""
    namespace: str
    """Namespace of the request."""
    model: str
    """Model alias."""
    scope: str = ""
    """Cache scope of the entry (to act on it)."""
    tenant: str = ""
    """Tenant of the request."""
    embedder: str = ""
    """Fingerprint of the embedding model."""
    verifier: str = ""
    """Fingerprint of the learned verifier that scored the pair on the hit path ("" when none
    did: no verifier, outside its band, an exact repeat, a timeout)."""
    verifier_score: float | None = Field(default=None, ge=0.0, le=1.0)
    """The verifier's score (0-1) of the pair when it scored it."""
    near_miss: bool = False
    """True when the entry was not served: the similarity fell just under the threshold."""
    shadow: bool = False
    """True for a shadow-mode hit: it would have been served; the upstream answered."""
    admission: bool = False
    """True for an admission audit (``audited`` policy): does a new, not yet served entry
    answer its own prompt? ``new_prompt`` is that prompt; a pass releases the entry."""
    exact: bool = False
    """True for an exact repeat (found by the exact layer, not by similarity): reported apart
    from semantic hits, whose FP rate is the one alerts use. Jobs recorded before it was kept
    read as semantic."""
    sample_p: float | None = Field(default=None, gt=0.0, le=1.0)
    """The probability with which this job was sampled for audit (1.0 during an entry's
    burn-in): its label stands for 1 / ``sample_p`` served hits in the FP estimate. None on
    jobs recorded before it was kept (weighted 1)."""
    vector: str | None = None
    """The request's vector (``cache.neighbourhood.pack``) on a sampled semantic hit: a
    verdict on it becomes a label of the entry's neighbourhood. None on exact repeats (their
    vector is the entry's), near-misses, and jobs recorded before it was kept."""
    queued_at: float = 0.0
    """Unix time the job was queued (audit lag is measured from it)."""
    rollout: bool = False
    """True for a would-be hit of the embedding version a namespace is migrating to
    (``cache.version_shadow``): evidence for its cutover (``vetcache rollout``), kept out of
    the serving version's FP rates, alerts and tuning (``audit.stats.serving_verdicts``).
    ``embedder`` names that version."""
    traceparent: str = ""
    """W3C ``traceparent`` of the request's span when tracing is on: the judge's span links
    to it, and the verdict names its trace."""


class Judgement(BaseModel):
    """A judge's answer for one job."""

    model_config = ConfigDict(frozen=True)

    verdict: VerdictKind
    """``error`` when the judge could not decide (never counted as a false positive)."""
    score: float | None = Field(default=None, ge=0.0, le=1.0)
    """How fully the cached answer serves the new prompt, 0-1 (None on error)."""
    reason: str
    """One line on why."""
    judge: str
    """Judge name and version, e.g. ``contrast/2``."""


def job_kind(job: AuditJob) -> Literal["hit", "exact", "near_miss", "shadow", "admission"]:
    """What was audited: a served semantic hit, a served exact repeat, a near-miss, a
    shadow-mode would-be hit, or a new entry before it may be served. ``hit`` is the kind the
    FP-rate recording rules count, so exact repeats stay out of the rate alerts use."""
    if job.admission:
        return "admission"
    if job.near_miss:
        return "near_miss"
    return "shadow" if job.shadow else "exact" if job.exact else "hit"


class Verdict(BaseModel):
    """A label on one served pair, with its provenance."""

    model_config = ConfigDict(frozen=True)

    id: str
    """Verdict id (the job id for judge verdicts)."""
    source: LabelSource = "judge"
    """Who labelled it: the judge, the app (feedback) or a person (review)."""
    job: AuditJob
    """The pair and its context: request, entry, prompts, answer, similarity, threshold..."""
    verdict: VerdictKind
    """The label."""
    score: float | None = None
    """The judge's score, when there is one."""
    reason: str = ""
    """Why."""
    judge: str = ""
    """Judge name and version (``feedback`` / ``review`` for outside labels)."""
    created_at: float
    """Unix time of the verdict."""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def trace_id(self) -> str:
        """The trace of the request this verdict is about ("" when it was not traced)."""
        return trace_id(self.job.traceparent)


class HardNegative(BaseModel):
    """Two prompts close in embedding space whose answers differ: a labelled false hit (or a
    near-miss judged wrong). Kept for tuning and for evaluating embedding models."""

    model_config = ConfigDict(frozen=True)

    cached_prompt: str
    """The prompt the cached answer was produced for."""
    new_prompt: str
    """The prompt it was (or would have been) served to."""
    similarity: float
    """Their cosine similarity under ``embedder``."""
    namespace: str
    """Namespace of the request."""
    model: str
    """Model alias."""
    embedder: str = ""
    """Fingerprint of the embedding model that scored them."""
    source: LabelSource
    """Who said it was wrong."""
    verdict_id: str
    """The verdict that made it a hard negative."""
    created_at: float
    """Unix time it was stored."""

    @property
    def pair_id(self) -> str:
        """Stable id of the (cached, new) pair within its namespace: a pair is stored once."""
        return pair_id(self.namespace, self.cached_prompt, self.new_prompt)


def pair_id(namespace: str, cached_prompt: str, new_prompt: str) -> str:
    """Digest naming one (cached prompt, new prompt) pair in a namespace."""
    digest = hashlib.blake2b(digest_size=12)
    for part in (namespace, cached_prompt, new_prompt):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()
