"""The semantic cache: request -> cache key, embedder, vector stores, thresholds, admission.

Public API: ``SemanticCache`` with its ``CacheSettings``, the boundary models ``CacheKey``,
``CacheEntry``, ``CacheHit`` and ``Lookup``, and ``build_cache`` to assemble one from a Redis
URL (or none, for the in-process store). ``cache`` imports neither ``proxy`` nor ``audit``.
"""

from cache.embedder import Embedder, SentenceTransformerEmbedder
from cache.keys import NotCacheable
from cache.schema import CacheEntry, CacheHit, CacheKey
from cache.semantic import CacheSettings, Lookup, SemanticCache
from cache.stores.base import Store, StoreError, StoreUnusable


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
    embedder: SentenceTransformerEmbedder
    if settings.embedding_backend == "torch":
        embedder = SentenceTransformerEmbedder(
            settings.embedding_model,
            batch_window_ms=settings.batch_window_ms,
            max_batch=settings.max_batch,
            threads=settings.embedding_threads,
        )
    else:
        from pathlib import Path

        from cache.onnx_embedder import OnnxEmbedder

        embedder = OnnxEmbedder(
            settings.embedding_model,
            precision="int8" if settings.embedding_backend == "onnx-int8" else "fp32",
            directory=Path(settings.onnx_dir) if settings.onnx_dir else None,
            batch_window_ms=settings.batch_window_ms,
            max_batch=settings.max_batch,
            threads=settings.embedding_threads,
        )
    return SemanticCache(settings, store, embedder)


__all__ = [
    "CacheEntry",
    "CacheHit",
    "CacheKey",
    "CacheSettings",
    "Embedder",
    "Lookup",
    "NotCacheable",
    "SemanticCache",
    "Store",
    "StoreError",
    "StoreUnusable",
    "build_cache",
]
