"""``SemanticCache``: exact layer, then similarity search within the scope; fail-open.

Similarity is cosine similarity of unit vectors, from -1 to 1 (1 = same direction); a hit
needs ``similarity >= threshold``. Every cache or embedder failure, and every lookup slower
than ``lookup_budget_ms``, is an ``error`` outcome: the caller answers from the upstream.
One warning is logged when an incident starts and one line when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any, Literal, get_args

import orjson
from pydantic import BaseModel, ConfigDict, Field

from cache.embedder import BUNDLED_MODEL, Embedder, EmbedderError, Vector
from cache.keys import derive_key
from cache.observe import NULL_OBSERVER, Observer
from cache.schema import CacheEntry, CacheHit, CacheKey, ContextPolicy
from cache.stores.base import Store, StoreError, StoreUnusable

log = logging.getLogger("vetcache.cache")

Similarity = float
"""Cosine similarity in [-1, 1]."""


class Confirm(BaseModel):
    """Admission after ``confirm`` distinct askers (API keys; without auth, requests) sent
    the identical request; the first asker counts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    confirm: int = Field(ge=2, le=1000)
    """Distinct askers needed before the entry is served."""


EmbeddingBackend = Literal["torch", "onnx-fp32", "onnx-int8"]
"""How the embedding model runs (``CacheSettings.embedding_backend``)."""
EMBEDDING_BACKENDS: tuple[str, ...] = get_args(EmbeddingBackend)

Admission = Literal["open", "audited"] | Confirm
"""How a new answer becomes servable: ``open`` at once; ``{confirm: N}`` once N distinct
askers sent the identical request; ``audited`` once a judge passed it."""


class CacheSettings(BaseModel):
    """How the semantic cache matches and admits."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    """Look up and admit at all."""
    threshold: float = Field(default=0.95, ge=-1.0, le=1.0)
    """Default minimum cosine similarity for a hit."""
    namespace_thresholds: dict[str, float] = Field(default_factory=dict)
    """Per-namespace thresholds, overriding ``threshold``."""
    context_policy: ContextPolicy = "last_user"
    """What of the conversation must match exactly (see ``cache.keys``)."""
    last_turns: int = Field(default=2, ge=0)
    """Earlier turns that must match under ``last_turns``."""
    ttl_s: int = Field(default=86400, ge=1)
    """Seconds an entry lives."""
    max_entries_per_namespace: int | None = Field(default=100_000, ge=1)
    """Entries kept per namespace; the oldest are evicted beyond it."""
    threshold_refresh_s: float = Field(default=2.0, gt=0)
    """How often live thresholds are re-read from the store (replicas follow within it)."""
    lookup_budget_ms: float = Field(default=50.0, gt=0)
    """A lookup slower than this is abandoned and the request goes upstream."""
    embedding_model: str = BUNDLED_MODEL
    """sentence-transformers model name or path; ``bundled:all-MiniLM-L6-v2`` needs no
    download."""
    embedding_backend: EmbeddingBackend = "onnx-int8"
    """How the model runs: exported once to ONNX Runtime with int8 weights (the default: the
    fastest, ~15x torch per query here, cosine > 0.99 to torch's vectors and pair-detection
    ROC-AUC within 0.003), ONNX fp32 (torch's vectors, ~3.5x), or sentence-transformers on
    torch (the reference; any model it loads). Vectors of different backends are never
    compared: switching starts an empty cache."""
    onnx_dir: str | None = None
    """Where ONNX exports are kept (default ``$VETCACHE_ONNX_DIR`` or ~/.cache/vetcache/onnx)."""
    batch_window_ms: float = Field(default=1.0, ge=0)
    """How long the embedder waits to batch concurrent lookups (torch, onnx-fp32; onnx-int8
    embeds each text alone and does not wait)."""
    max_batch: int = Field(default=32, ge=1)
    """Largest embedding batch."""
    embedding_threads: int = Field(default=1, ge=1, le=64)
    """Threads one embedding may use (torch's or ONNX Runtime's intra-op pool)."""
    admit_tool_calls: bool = False
    """Cache answers that call tools."""
    max_temperature: float | None = None
    """Do not cache requests sampled hotter than this."""
    shadow: bool = False
    """Shadow mode everywhere: look up (and audit) as usual, but always answer from the
    upstream; metrics and verdicts report what the cache would have done."""
    shadow_namespaces: frozenset[str] = frozenset()
    """Shadow mode for these namespaces only."""
    admission: Admission = "open"
    """Default admission policy (against cache poisoning: see ``Admission``)."""
    namespace_admission: dict[str, Admission] = Field(default_factory=dict)
    """Per-namespace admission policies, overriding ``admission``."""
    contrast_guard: bool = False
    """Check semantic hits with the offline contrast rules on the request path and answer
    fresh when the prompts disagree on negation, numbers, names or scope (~40 us a hit)."""

    def admission_for(self, namespace: str) -> Admission:
        """The admission policy of ``namespace``."""
        return self.namespace_admission.get(namespace, self.admission)

    def is_shadow(self, namespace: str) -> bool:
        """Whether ``namespace`` runs in shadow mode."""
        return self.shadow or namespace in self.shadow_namespaces


class Lookup(BaseModel):
    """What a lookup found, and what the caller needs to admit the answer later."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    outcome: Literal["hit", "miss", "error"]
    """``error``: the cache could not answer in time; the request goes upstream."""
    threshold: float
    """Threshold in force for this request."""
    hit: CacheHit | None = None
    """The entry served, on a hit."""
    best_similarity: Similarity | None = None
    """Similarity of the best candidate, hit or not (None when the scope was empty)."""
    vector: Vector | None = None
    """The request's vector, reused at admission."""
    candidate: CacheEntry | None = None
    """On a miss, the nearest entry that fell short (for near-miss audits)."""
    shadow_hit: CacheHit | None = None
    """In shadow mode: the hit that would have been served (the answer came upstream)."""
    pending: CacheEntry | None = None
    """An entry admitted under this exact key that is not servable yet (admission policy):
    the request counts as one of its askers, and no second entry is admitted for it."""


class SemanticCache:
    """The cache the gateway asks before calling the upstream."""

    def __init__(
        self,
        settings: CacheSettings,
        store: Store,
        embedder: Embedder,
        observer: Observer = NULL_OBSERVER,
    ) -> None:
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.observer = observer
        self.errors = 0
        self._store_open = False
        self._failing = False
        self._live: dict[str, float] = {}
        self._refresher: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    async def open(self) -> None:
        """Load the embedder and prepare the store. A store that cannot be reached now is
        retried on later lookups; one that can never work (``StoreUnusable``) raises."""
        await self.embedder.open()
        await self._open_store()
        self._closing = asyncio.Event()
        self._refresher = asyncio.create_task(self._refresh_forever(), name="vetcache-thresholds")

    async def _open_store(self) -> None:
        try:
            await self.store.open(self.embedder.dimension)
        except StoreUnusable:
            raise
        except StoreError as exc:
            self._incident(exc)
            return
        self._store_open = True

    async def close(self) -> None:
        # A stop flag as well as cancel(): redis-py (8.1, seen here) can swallow a task's
        # cancellation mid-command, and the loop would then run on.
        self._closing.set()
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.wait({self._refresher}, timeout=5.0)
        await self.embedder.close()
        await self.store.close()

    async def refresh_thresholds(self) -> None:
        """Re-read the live thresholds (kept as they were if the store is down)."""
        try:
            self._live = await self.store.thresholds()
        except StoreError as exc:
            self._incident(exc)

    async def _refresh_forever(self) -> None:
        while not self._closing.is_set():
            await self.refresh_thresholds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.settings.threshold_refresh_s)

    async def set_threshold(self, namespace: str, value: float | None) -> None:
        """Set (or with None, clear) the live threshold of ``namespace`` for every replica."""
        await self.store.set_threshold(namespace, value)
        await self.refresh_thresholds()

    def thresholds(self) -> dict[str, float]:
        """The namespace thresholds in force: config, overridden by live ones."""
        return {**self.settings.namespace_thresholds, **self._live}

    def key(self, body: Mapping[str, Any], tenant: str, namespace: str) -> CacheKey:
        """The request's key (``cache.keys.NotCacheable`` when it has none)."""
        return derive_key(
            body,
            tenant=tenant,
            namespace=namespace,
            embedder=self.embedder.fingerprint,
            policy=self.settings.context_policy,
            last_turns=self.settings.last_turns,
        )

    def threshold(self, namespace: str, requested: float | None, may_loosen: bool) -> float:
        """The threshold in force: the namespace's, raised (or, for admins, set) per request."""
        base = self._live.get(namespace)
        if base is None:
            base = self.settings.namespace_thresholds.get(namespace, self.settings.threshold)
        if requested is None:
            return base
        return requested if may_loosen else max(base, requested)

    async def lookup(self, key: CacheKey, threshold: float) -> Lookup:
        """Exact layer, then the nearest entry in the scope; ``error`` within the budget."""
        try:
            async with asyncio.timeout(self.settings.lookup_budget_ms / 1000.0):
                return await self._lookup(key, threshold)
        except (StoreError, EmbedderError, TimeoutError) as exc:
            self._incident(exc)
            return Lookup(outcome="error", threshold=threshold)

    async def _lookup(self, key: CacheKey, threshold: float) -> Lookup:
        if not self._store_open:
            await self._open_store()
            if not self._store_open:
                raise StoreError("the store is not reachable")
        observer = self.observer
        with observer.timed("exact_lookup"):
            exact = await self.store.get_exact(key.scope, key.exact)
        if exact is not None and not exact.quarantined and not exact.pending:
            self._recovered()
            hit = CacheHit(entry=exact, similarity=1.0, exact=True)
            return Lookup(outcome="hit", threshold=threshold, hit=hit, best_similarity=1.0)
        pending = exact if exact is not None and exact.pending else None
        lookup = await self._semantic(key, threshold)
        return lookup.model_copy(update={"pending": pending}) if pending else lookup

    async def _semantic(self, key: CacheKey, threshold: float) -> Lookup:
        observer = self.observer
        with observer.timed("embed"):
            vector = await self.embedder.embed(key.text)
        with observer.timed("vector_search"):
            found = await self.store.search(key.scope, vector, k=1)
        self._recovered()
        if not found:
            return Lookup(outcome="miss", threshold=threshold, vector=vector)
        entry, similarity = found[0]
        similarity = min(1.0, max(-1.0, similarity))
        bar = max(threshold, entry.min_similarity or -1.0)
        if entry.embedder != self.embedder.fingerprint or entry.quarantined or similarity < bar:
            return Lookup(
                outcome="miss",
                threshold=threshold,
                best_similarity=similarity,
                vector=vector,
                candidate=entry if entry.embedder == self.embedder.fingerprint else None,
            )
        hit = CacheHit(entry=entry, similarity=similarity, exact=False)
        return Lookup(
            outcome="hit", threshold=threshold, hit=hit, best_similarity=similarity, vector=vector
        )

    def admissible(self, body: Mapping[str, Any], completion: Mapping[str, Any]) -> bool:
        """Whether an upstream answer may be cached: one complete choice that stopped
        normally, no tool calls unless allowed, not sampled hotter than allowed."""
        if body.get("n", 1) not in (None, 1):
            return False
        temperature = body.get("temperature")
        ceiling = self.settings.max_temperature
        if ceiling is not None and isinstance(temperature, int | float) and temperature > ceiling:
            return False
        choices = completion.get("choices") or []
        if len(choices) != 1:
            return False
        choice = choices[0]
        reason = choice.get("finish_reason")
        tool_calls = (choice.get("message") or {}).get("tool_calls")
        if reason == "tool_calls" or tool_calls:
            return self.settings.admit_tool_calls and reason in ("tool_calls", "stop")
        return bool(reason == "stop")

    async def admit(
        self,
        key: CacheKey,
        vector: Vector | None,
        completion: Mapping[str, Any],
        asker: str = "",
    ) -> CacheEntry | None:
        """Store ``completion`` under ``key`` (pending, under a ``confirm`` or ``audited``
        policy, with ``asker`` as its first asker); the entry stored, or None when storing
        failed (counted and logged, not raised)."""
        with self.observer.timed("admit"):
            return await self._admit(key, vector, completion, asker)

    async def _admit(
        self, key: CacheKey, vector: Vector | None, completion: Mapping[str, Any], asker: str
    ) -> CacheEntry | None:
        policy = self.settings.admission_for(key.namespace)
        try:
            if vector is None:
                vector = await self.embedder.embed(key.text)
            if not self._store_open:
                await self._open_store()
                if not self._store_open:
                    return None
            entry = CacheEntry(
                id=uuid.uuid4().hex,
                scope=key.scope,
                exact=key.exact,
                namespace=key.namespace,
                tenant=key.tenant,
                model=key.model,
                text=key.text,
                response=orjson.dumps(completion).decode(),
                embedder=self.embedder.fingerprint,
                created_at=time.time(),
                pending=policy != "open",
            )
            await self.store.put(
                entry, vector, self.settings.ttl_s, self.settings.max_entries_per_namespace
            )
            if isinstance(policy, Confirm):
                await self.store.confirm(key.scope, entry.id, asker, policy.confirm)
        except (StoreError, EmbedderError) as exc:
            self._incident(exc)
            return None
        return entry

    async def confirm(self, key: CacheKey, entry: CacheEntry, asker: str) -> None:
        """Count ``asker`` for the pending ``entry`` under a ``confirm`` policy."""
        policy = self.settings.admission_for(key.namespace)
        if not isinstance(policy, Confirm):
            return
        try:
            if await self.store.confirm(key.scope, entry.id, asker, policy.confirm):
                log.info("entry %s released: %d askers", entry.id, policy.confirm)
        except StoreError as exc:
            self._incident(exc)

    def _incident(self, exc: Exception) -> None:
        self.errors += 1
        kind = (
            "timeout"
            if isinstance(exc, TimeoutError)
            else "embedder"
            if isinstance(exc, EmbedderError)
            else "store"
        )
        self.observer.cache_error(kind)
        if not self._failing:
            self._failing = True
            if kind == "timeout":  # slow, not down: say so (lookup_budget_ms may be too tight)
                log.warning(
                    "cache lookup over its %.0f ms budget, serving from upstream",
                    self.settings.lookup_budget_ms,
                )
            else:
                log.warning("cache unavailable, serving from upstream: %s", type(exc).__name__)

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            log.info("cache recovered")
