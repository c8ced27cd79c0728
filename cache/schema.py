"""The cache's boundary types: what goes in, what comes out."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from cache.embedder import Vector

ContextPolicy = Literal["last_user", "last_turns", "full", "standalone"]


class Outcome(StrEnum):
    """What became of a request, the one word every report uses (the ``x-vetcache`` header,
    the ``outcome`` label of the request metrics, the access log, the trace). A lookup ends
    ``hit``, ``miss`` or ``fail_open``; the gateway adds ``bypass`` and ``error``."""

    HIT = "hit"
    """Answered from the cache."""
    MISS = "miss"
    """Looked up, answered by the upstream (no candidate, or none the policy would serve)."""
    FAIL_OPEN = "fail_open"
    """The cache failed or ran over its lookup budget; the upstream answered."""
    BYPASS = "bypass"
    """The cache was not asked: off, not cacheable, or ``Cache-Control: no-cache``."""
    ERROR = "error"
    """The request failed (an error answer, or a stream broken off)."""


class Refusal(StrEnum):
    """Why the serving policy refused the nearest candidate although its similarity alone
    would not have (``x-vetcache-refused``). Checks plugged into the policy refuse under
    their own name (``LanguageCheck``: ``language``; ``ContrastCheck``: ``contrast``;
    ``VerifierCheck``: ``verifier``)."""

    EMBEDDER = "embedder"
    """The entry's vector is another embedding model's: vectors of two models are never
    compared."""
    QUARANTINED = "quarantined"
    """An audit quarantined the entry."""
    ENTRY_BAR = "entry_bar"
    """An audit raised the entry's own bar above this similarity (a bar raised to 1.0, after
    a false exact repeat, closes the entry to every request)."""
    UNSEEN = "unseen"
    """The embedder does not see all of one of the two prompts (tokens past its window, or a
    word it reads as unknown), so their similarity does not compare them whole; exact
    repeats are still served."""
    NEIGHBOURHOOD = "neighbourhood"
    """The nearest of the entry's labelled neighbours (the prompts audits judged against it,
    the entry's own counting as correct) is a false hit (``cache.neighbourhood``)."""
    FALLBACK = "fallback"
    """The entry's answer came from a fallback model, not the alias asked for
    (``cache.admit_fallbacks`` is off)."""
    STALE = "stale"
    """The entry is older than the request's ``Cache-Control: max-age`` allows."""


class CacheKey(BaseModel):
    """Where a request may be answered from: an exact partition plus the text to match."""

    model_config = ConfigDict(frozen=True)

    scope: str
    """Hex SHA-256 of everything that must match exactly (tenant, namespace, model, system
    prompt, tools, output-changing parameters, embedder, earlier turns per the policy)."""
    exact: str
    """Hex SHA-256 of the scope and the compared messages as sent (no folding): the
    exact-repeat layer."""
    base: str
    """Hex SHA-256 of everything in the scope but the embedding version
    (``cache.keys.versioned_key``)."""
    prompt: str
    """Hex SHA-256 of the compared messages as sent (the exact layer's part of the key)."""
    embedder: str
    """Fingerprint of the embedding version the scope was made for."""
    text: str
    """The trailing user intent, the only part compared by similarity."""
    tenant: str
    """Tenant of the request."""
    namespace: str
    """Namespace of the request (thresholds and caps are per namespace)."""
    model: str
    """Model alias of the request."""

    def for_version(self, fingerprint: str) -> CacheKey:
        """The same request's key under the embedding version ``fingerprint``."""
        from cache.keys import versioned_key  # keys imports this module

        scope, exact = versioned_key(self.base, self.prompt, fingerprint)
        return self.model_copy(update={"scope": scope, "exact": exact, "embedder": fingerprint})


class CacheEntry(BaseModel):
    """One cached answer."""

    id: str
    """Entry id, unique across the cache."""
    scope: str
    """The scope it was admitted under; it is only ever served within it."""
    exact: str
    """Exact-layer key of the request that produced it."""
    namespace: str
    """Namespace it counts against."""
    tenant: str
    """Tenant whose request produced it."""
    model: str
    """Model alias asked for."""
    answered_by: str | None = None
    """Model alias whose deployment answered (another than ``model`` when the alias failed
    over to a fallback); None when the upstream did not say."""
    text: str
    """The prompt text that was embedded."""
    response: str
    """The upstream's OpenAI chat-completion JSON, as served."""
    embedder: str
    """Fingerprint of the embedding model that made its vector."""
    base: str = ""
    """``CacheKey.base`` of the request that produced it ("" for entries admitted before
    versions: a migration cannot place them under another version and skips them)."""
    prompt: str = ""
    """``CacheKey.prompt`` of that request ("" likewise)."""
    origin: str = ""
    """Id of the entry a migration copied it from ("" when admitted from a request)."""
    created_at: float
    """Unix time of admission."""
    ttl_s: int | None = None
    """Seconds it was admitted to live (the request's TTL, or ``cache.ttl_s``); a hit under
    ``cache.sliding_ttl`` gives it this long again. None: admitted before TTLs were kept."""
    min_similarity: float | None = None
    """The entry's own bar, raised by audits above the similarity of a false hit."""
    labelled: bool = False
    """An audit judged a hit on it false and kept the prompt's vector: the lookup reads its
    labels and the policy decides by the nearest (``cache.neighbourhood``)."""
    quarantined: bool = False
    """Set by audits: the entry is kept for review but never served."""
    pending: bool = False
    """Admitted under a ``confirm`` or ``audited`` admission policy and not released yet:
    found by its exact key (to count confirmations), never served, never searched."""


class Candidate(BaseModel):
    """The entry a lookup found nearest to the request: served, or not, by the policy."""

    entry: CacheEntry
    """The entry."""
    similarity: float = Field(ge=-1.0, le=1.0)
    """Cosine similarity of the request's text to the entry's (1.0 for exact repeats)."""
    exact: bool
    """Found by the exact layer, without a vector search."""
    neighbours: tuple[tuple[float, bool], ...] = ()
    """A ``labelled`` entry's labels as the request sees them: (similarity of the request
    to the labelled prompt, judged correct), read by the lookup."""


class PassedOver(BaseModel):
    """A candidate the serving policy refused before it chose a later one (or none)."""

    model_config = ConfigDict(frozen=True)

    candidate: Candidate
    """The refused candidate."""
    reason: str
    """Why: a ``Refusal``, or the name of the check that refused it."""


class Lookup(BaseModel):
    """What a lookup found and what the serving policy made of it; nothing rewrites it
    afterwards. The answer to admit later needs ``vector`` and ``pending``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    outcome: Literal[Outcome.HIT, Outcome.MISS, Outcome.FAIL_OPEN]
    """``hit``: serve ``candidate``; ``miss``: ask the upstream; ``fail_open``: the cache
    could not answer in time, ask the upstream."""
    threshold: float
    """Threshold in force for this request."""
    candidate: Candidate | None = None
    """The entry served (hit) or would-be served (``shadow``): the most similar of the
    search's candidates the policy would serve. When there is none, the nearest entry:
    refused (``refused``), or short of the threshold (a miss audits may sample as a
    near-miss)."""
    shadow: bool = False
    """Shadow mode: the policy would have served ``candidate``; the upstream answers."""
    refused: str | None = None
    """On a miss, why the nearest candidate is not served although its similarity alone
    would not have stopped it: a ``Refusal``, or the name of the check that refused it."""
    passed_over: tuple[PassedOver, ...] = ()
    """Candidates more similar than ``candidate`` (or, on a miss, than the threshold) that the
    policy refused, most similar first."""
    verifier: str = ""
    """Fingerprint of the learned verifier that scored ``candidate`` ("" when none did)."""
    verifier_score: float | None = None
    """Its score (0-1): on a hit or shadow hit the served candidate's, on a refusal the
    nearest's; None when it did not score (outside its band, timed out, failed)."""
    embedder: str = ""
    """Fingerprint of the embedding version the lookup searched under (its key's)."""
    vector: Vector | None = None
    """The request's vector, reused at admission."""
    pending: CacheEntry | None = None
    """An entry admitted under this exact key that is not servable yet (admission policy):
    the request counts as one of its askers, and no second entry is admitted for it."""

    @property
    def hit(self) -> Candidate | None:
        """The candidate served, on a hit."""
        return self.candidate if self.outcome == Outcome.HIT else None

    @property
    def shadow_hit(self) -> Candidate | None:
        """The candidate shadow mode would have served."""
        return self.candidate if self.shadow else None

    @property
    def best_similarity(self) -> float | None:
        """Similarity of ``candidate`` (None when the scope had none)."""
        return self.candidate.similarity if self.candidate is not None else None
