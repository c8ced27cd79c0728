"""The semantic cache: request -> cache key, embedder, vector stores, thresholds, admission.

Public API: ``SemanticCache`` with its ``CacheSettings`` and serving policy (``Check`` is
what plugs into it), the boundary models ``CacheKey``, ``CacheEntry``, ``Candidate``,
``Lookup``, ``Outcome`` and ``Refusal``, the errors (``cache.errors``), ``build_cache`` to
assemble one from a Redis URL (or none, for the in-process store), and ``build_embedder``
for the embedder alone. ``cache`` imports neither ``proxy`` nor ``audit``.
"""

from cache.embedder import Embedder, SentenceTransformerEmbedder
from cache.embedder_set import EmbedderSet
from cache.errors import CacheError, EmbedderError, NotCacheable, StoreError, StoreUnusable
from cache.policy import Check, ServingPolicy
from cache.schema import CacheEntry, CacheKey, Candidate, Lookup, Outcome, Refusal
from cache.semantic import SemanticCache
from cache.settings import CacheSettings
from cache.stores.base import Store


def build_embedder(
    settings: CacheSettings, *, max_batch: int | None = None
) -> SentenceTransformerEmbedder:
    """The embedder ``settings`` name (model, backend, batching, threads), not loaded yet."""
    window, batch = settings.batch_window_ms, max_batch or settings.max_batch
    threads = settings.embedding_threads
    if settings.embedding_backend == "torch":
        return SentenceTransformerEmbedder(
            settings.embedding_model, batch_window_ms=window, max_batch=batch, threads=threads
        )
    from pathlib import Path

    from cache.onnx_embedder import OnnxEmbedder

    return OnnxEmbedder(
        settings.embedding_model,
        precision="int8" if settings.embedding_backend == "onnx-int8" else "fp32",
        directory=Path(settings.onnx_dir) if settings.onnx_dir else None,
        batch_window_ms=window,
        max_batch=batch,
        threads=threads,
    )


def build_versions(settings: CacheSettings) -> EmbedderSet:
    """Every embedding version ``settings`` name: the primary (``embedding_model``) and
    ``embedding_versions``, each with the primary's batching and threads; not loaded yet."""
    others = {
        name: build_embedder(
            settings.model_copy(
                update={"embedding_model": version.model, "embedding_backend": version.backend}
            )
        )
        for name, version in settings.embedding_versions.items()
    }
    return EmbedderSet(build_embedder(settings), settings.embedding_version, others)


def build_cache(
    settings: CacheSettings, redis_url: str | None, *, redis_cluster: bool = False
) -> SemanticCache:
    """A cache on Redis when ``redis_url`` is given (a Redis Cluster with ``redis_cluster``),
    else on the in-process store."""
    store: Store
    if redis_url:
        from cache.stores.redis import RedisStore

        store = RedisStore(redis_url, cluster=redis_cluster)
    else:
        from cache.stores.memory import MemoryStore

        store = MemoryStore()
    versions = build_versions(settings)
    return SemanticCache(settings, store, versions.primary, versions=versions)


__all__ = [
    "CacheEntry",
    "CacheError",
    "CacheKey",
    "CacheSettings",
    "Candidate",
    "Check",
    "Embedder",
    "EmbedderError",
    "Lookup",
    "NotCacheable",
    "Outcome",
    "Refusal",
    "SemanticCache",
    "ServingPolicy",
    "Store",
    "StoreError",
    "StoreUnusable",
    "build_cache",
    "build_embedder",
    "build_versions",
]
