"""The cache package's errors, in one tree.

    CacheError                 base of every error ``cache`` raises
    ├── NotCacheable           the request has no trailing user text the key fully
    │                          understands (``reason``: why, for ``x-vetcache-bypass``)
    ├── EmbedderError          the embedding model could not be loaded, or failed on an input
    ├── VerifierError          the verifier's model folder is not a verifier, or cannot be
    │                          exported or loaded (stops a gateway at start)
    ├── Overloaded             a lookup was shed: it could not finish within its budget
    ├── RolloutRefused         a rollout step (start, cutover, rollback...) was refused, with
    │                          the reasons (``cache.rollout``)
    └── StoreError             the store failed: unreachable, timed out, an error reply
        └── StoreUnusable      the store can never work as configured (e.g. Redis without
                               the Query Engine, or a cluster node without ``redis_cluster``)

A lookup turns ``EmbedderError``, ``StoreError``, ``Overloaded`` and a blown budget into a
fail-open miss (``cache.semantic``); only ``StoreUnusable`` and ``VerifierError`` stop a
gateway at start. Redis'
own exceptions become ``StoreError`` (or the audit package's errors) in one place:
``cache.redis_client.redis_errors``.
"""

from __future__ import annotations


class CacheError(Exception):
    """Base of every error the cache package raises."""


class NotCacheable(CacheError):
    """The request has no trailing user text the key fully understands (it ends with a tool
    result, holds an image, or text the embedder cannot see)."""

    def __init__(self, message: str, reason: str = "no_user_text") -> None:
        super().__init__(message)
        self.reason = reason
        """Why, in a word: ``no_user_text``, ``unknown_content`` or ``hidden_text``."""


class EmbedderError(CacheError):
    """The embedding model could not be loaded or failed on an input."""


class VerifierError(CacheError):
    """The verifier's model folder is not a verifier (no model card, no operating point), or
    it cannot be exported or loaded: a configuration error, raised at start."""


class Overloaded(CacheError):
    """A lookup was shed before it ran: the embedder's queue could not finish it within its
    budget, or too many abandoned lookups are still waiting on the store."""


class RolloutRefused(CacheError):
    """A rollout step was refused: the namespace is not in a state that allows it, or the
    evidence (migration, margin gate, shadow numbers) does not hold. ``reasons``: each
    failed condition, one line each."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


class StoreError(CacheError):
    """The store failed (unreachable, timed out, answered an error). The cache fails open."""


class StoreUnusable(StoreError):
    """The store can never work as configured (e.g. Redis without the Query Engine)."""
