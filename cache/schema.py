"""The cache's boundary types: what goes in, what comes out."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ContextPolicy = Literal["last_user", "last_turns", "full"]


class CacheKey(BaseModel):
    """Where a request may be answered from: an exact partition plus the text to match."""

    model_config = ConfigDict(frozen=True)

    scope: str
    """Hex SHA-256 of everything that must match exactly (tenant, namespace, model, system
    prompt, tools, output-changing parameters, embedder, earlier turns per the policy)."""
    exact: str
    """Hex SHA-256 of the scope and the normalized messages: the exact-repeat layer."""
    text: str
    """The trailing user intent, the only part compared by similarity."""
    tenant: str
    """Tenant of the request."""
    namespace: str
    """Namespace of the request (thresholds and caps are per namespace)."""
    model: str
    """Model alias of the request."""


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
    """Model alias that produced it."""
    text: str
    """The prompt text that was embedded."""
    response: str
    """The upstream's OpenAI chat-completion JSON, as served."""
    embedder: str
    """Fingerprint of the embedding model that made its vector."""
    created_at: float
    """Unix time of admission."""
    min_similarity: float | None = None
    """The entry's own bar, raised by audits above the similarity of a false hit."""
    quarantined: bool = False
    """Set by audits: the entry is kept for review but never served."""
    pending: bool = False
    """Admitted under a ``confirm`` or ``audited`` admission policy and not released yet:
    found by its exact key (to count confirmations), never served, never searched."""


class CacheHit(BaseModel):
    """A lookup's answer."""

    entry: CacheEntry
    """The entry served."""
    similarity: float = Field(ge=-1.0, le=1.0)
    """Cosine similarity of the request's text to the entry's (1.0 for exact repeats)."""
    exact: bool
    """Found by the exact layer, without a vector search."""
