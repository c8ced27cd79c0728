"""How the semantic cache matches, admits and serves: ``CacheSettings`` (``cache:`` in the
config), and the one rule for the threshold in force."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from cache.embedder import BUNDLED_MODEL
from cache.language import LANGUAGES
from cache.rollout_settings import RolloutSettings
from cache.schema import ContextPolicy
from cache.verifier_settings import VerifierSettings


class Confirm(BaseModel):
    """Admission after ``confirm`` distinct askers (API keys; without auth, requests) sent
    the identical request; the first asker counts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    confirm: int = Field(ge=2, le=1000)
    """Distinct askers needed before the entry is served. Askers are the keys of the entry's
    tenant: a tenant with fewer keys never gets a hit (docs/cache.md)."""


EmbeddingBackend = Literal["torch", "onnx-fp32", "onnx-int8"]
"""How the embedding model runs (``CacheSettings.embedding_backend``)."""
EMBEDDING_BACKENDS: tuple[str, ...] = get_args(EmbeddingBackend)
_VERSION_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")

Admission = Literal["open", "audited"] | Confirm
"""How a new answer becomes servable: ``open`` at once; ``{confirm: N}`` once N distinct
askers sent the identical request; ``audited`` once a judge passed it."""


class EmbeddingVersion(BaseModel):
    """Another version of the embedding model a replica loads, to migrate a namespace to it,
    run it in shadow, serve it after a cutover, or roll back to it (``vetcache rollout``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    """sentence-transformers model name or folder (``vetcache train --embedder`` writes one)."""
    backend: EmbeddingBackend = "onnx-int8"
    """How it runs, as ``cache.embedding_backend``."""


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
    """What of the conversation must match exactly (see ``cache.keys``): ``last_user`` (all
    earlier turns), ``last_turns`` (the last ``last_turns``), ``full`` (none; the whole
    conversation is compared), ``standalone`` (none when the last message stands alone, all
    when it follows up)."""
    last_turns: int = Field(default=2, ge=0)
    """Earlier turns that must match under ``last_turns``."""
    ttl_s: int = Field(default=86400, ge=1)
    """Seconds an entry lives, unless its request asked for another TTL."""
    max_ttl_s: int | None = Field(default=None, ge=1)
    """The longest TTL a request may give the entry its miss admits (``x-vetcache-ttl``,
    ``Cache-Control: s-maxage``); a longer one is cut to it. None: ``ttl_s`` (requests may
    only shorten it)."""
    sliding_ttl: bool = False
    """A hit gives the entry served its TTL again, from now (after the answer is sent): an
    entry lives while it is asked for. Eviction at the cap then takes the least recently
    served."""
    max_entries_per_namespace: int | None = Field(default=100_000, ge=1)
    """Entries kept per tenant and namespace; beyond it the tenant's entries closest to
    expiry in that namespace are evicted (never another tenant's): the oldest, or under
    ``sliding_ttl`` the least recently served."""
    threshold_refresh_s: float = Field(default=2.0, gt=0)
    """How often live thresholds are re-read from the store (replicas follow within it)."""
    lookup_budget_ms: float = Field(default=50.0, gt=0)
    """A lookup slower than this is abandoned and the request goes upstream."""
    embedding_model: str = BUNDLED_MODEL
    """sentence-transformers model name or path; ``bundled:all-MiniLM-L6-v2`` needs no
    download."""
    embedding_backend: EmbeddingBackend = "onnx-int8"
    """How the model runs: exported once to ONNX Runtime with int8 weights (the default: the
    fastest, ~15x torch per query here; cosine to torch's vectors >= 0.985, and > 0.99 for 99%
    of the texts tested; pair-detection ROC-AUC within 0.003), ONNX fp32 (torch's vectors,
    ~3.5x), or sentence-transformers on torch (the reference; any model it loads). Vectors of
    different backends are never compared: switching starts an empty cache."""
    embedding_version: str = Field(default="base", pattern=r"^[A-Za-z0-9._-]{1,64}$")
    """The name of ``embedding_model`` among the versions (``vetcache rollout``)."""
    embedding_versions: dict[str, EmbeddingVersion] = Field(default_factory=dict)
    """Other versions of the embedding model, by name, loaded at start. A namespace serves
    the version the store says (``vetcache rollout``; every replica follows within
    ``threshold_refresh_s``), else ``embedding_model``. A replica must load every version
    it is asked to serve, shadow or roll back to: a version it lacks is served by nobody
    there (its namespace answers from the upstream, never from another version's vectors)."""
    rollout: RolloutSettings = Field(default_factory=RolloutSettings)
    """How a namespace moves to another version (``cache.rollout_settings``)."""
    onnx_dir: str | None = None
    """Where ONNX exports are kept (default ``$VETCACHE_ONNX_DIR`` or ~/.cache/vetcache/onnx)."""
    batch_window_ms: float = Field(default=1.0, ge=0)
    """How long the embedder waits to batch concurrent lookups (torch, onnx-fp32; onnx-int8
    does not wait: it batches the texts that queued while its thread was busy)."""
    max_batch: int = Field(default=32, ge=1)
    """Largest embedding batch (a batch is also cut where it would end past a lookup's
    deadline)."""
    embedding_threads: int = Field(default=1, ge=1, le=64)
    """Threads one embedding may use (torch's or ONNX Runtime's intra-op pool)."""
    admit_tool_calls: bool = False
    """Cache answers that call tools (``tool_calls``, or a legacy ``function_call``)."""
    admit_refusals: bool = False
    """Cache refusals (an answer with ``message.refusal`` set). Empty answers are never
    cached."""
    admit_fallbacks: bool = False
    """Cache, and serve, an answer a fallback model gave when the alias asked for failed
    over (``model_list[].fallbacks``); off, such an answer is served once, never cached, and
    an entry holding one is refused (``x-vetcache-refused: fallback``)."""
    max_temperature: float | None = None
    """Do not cache requests sampled hotter than this."""
    shadow: bool = False
    """Shadow mode everywhere: look up (and audit) as usual, but always answer from the
    upstream; metrics and verdicts report what the cache would have done."""
    shadow_namespaces: frozenset[str] = frozenset()
    """Shadow mode for these namespaces only."""
    speculate: bool = False
    """Start the upstream call as soon as the exact layer misses, concurrently with embedding
    and search; a semantic hit cancels it (``proxy.speculation``). A miss then costs about
    the upstream's own latency instead of lookup + upstream; a cancelled call may still be
    billed for its prompt (``vetcache_speculative_calls_total{outcome="cancelled"}``)."""
    speculative_namespaces: frozenset[str] = frozenset()
    """Speculate in these namespaces only (``speculate`` turns it on everywhere)."""
    admission: Admission = "open"
    """Default admission policy (against cache poisoning: see ``Admission``)."""
    namespace_admission: dict[str, Admission] = Field(default_factory=dict)
    """Per-namespace admission policies, overriding ``admission``."""
    search_k: int = Field(default=4, ge=1, le=32)
    """Nearest entries searched when the serving policy refused the nearest one (an audit
    quarantined it or raised its bar, a check refused it): the most similar it would serve
    answers, so a refused entry does not hide a second-best one. The first search reads one
    entry; a refusal costs one more search (docs/performance.md). 1: never look further."""
    contrast_guard: bool = False
    """Check semantic hits with the offline contrast rules on the request path and answer
    fresh when the prompts disagree on negation, numbers, names or scope (~40 us a hit)."""

    verifier: VerifierSettings | None = None
    """The learned verifier (``cache.verifier_settings``): off when absent. With it on, set
    ``threshold`` to the band's floor (docs/cache.md: the operating point)."""

    embedder_languages: tuple[str, ...] = ("en",)
    """Languages the embedding model reads (ISO 639-1 codes among ``cache.language.LANGUAGES``;
    empty: all). A semantic hit where either prompt is in another language is refused
    (``language``; exact repeats are served): the default fits the bundled English model, whose
    similarities between French or Spanish prompts mean nothing. Set ``[]`` for a multilingual
    model."""

    @field_validator("embedding_versions")
    @classmethod
    def _version_names(
        cls, value: dict[str, EmbeddingVersion], info: ValidationInfo
    ) -> dict[str, EmbeddingVersion]:
        bad = sorted(name for name in value if not _VERSION_NAME.fullmatch(name))
        if bad:
            raise ValueError(f"version names are 1-64 of A-Z a-z 0-9 . _ -: {bad}")
        primary = info.data.get("embedding_version")
        if primary in value:
            raise ValueError(f"{primary!r} is embedding_version's name (embedding_model)")
        return value

    @field_validator("embedder_languages")
    @classmethod
    def _known_languages(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(LANGUAGES))
        if unknown:
            raise ValueError(f"unknown language codes {unknown}; known: {', '.join(LANGUAGES)}")
        return value

    def admission_for(self, namespace: str) -> Admission:
        """The admission policy of ``namespace``."""
        return self.namespace_admission.get(namespace, self.admission)

    def ttl_for(self, requested: int | None) -> int:
        """The TTL of an entry whose request asked for ``requested`` seconds (None: did not
        ask): the one rule for ``max_ttl_s``."""
        if requested is None:
            return self.ttl_s
        return min(requested, self.max_ttl_s or self.ttl_s)

    def speculates(self, namespace: str) -> bool:
        """Whether a miss in ``namespace`` calls the upstream before its lookup ends."""
        return self.speculate or namespace in self.speculative_namespaces

    def is_shadow(self, namespace: str) -> bool:
        """Whether ``namespace`` runs in shadow mode."""
        return self.shadow or namespace in self.shadow_namespaces

    def threshold_for(
        self,
        namespace: str,
        live: Mapping[str, float],
        requested: float | None = None,
        may_loosen: bool = False,
    ) -> float:
        """The threshold in force for ``namespace``: its live threshold (set at run time, in
        the store), else its configured one, else the default; a request's own threshold
        only raises it, unless ``may_loosen`` (the admin key came along)."""
        base = live.get(namespace)
        if base is None:
            base = self.namespace_thresholds.get(namespace, self.threshold)
        if requested is None:
            return base
        return requested if may_loosen else max(base, requested)
