"""A chat request's way through the cache and the upstream.

    key (or bypass) -> lookup (unless ``Cache-Control: no-cache``) -> hit: answer from the entry
                                                                   -> miss: one upstream call per
                                                                      exact key in flight, then
                                                                      admit (unless ``no-store``)

The route (``proxy.routes.chat``) turns the result into HTTP; this module knows no HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import Any, Literal

import orjson
from opentelemetry import trace
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from audit import Auditor
from audit.judges.contrast import ContrastJudge
from cache import CacheKey, Lookup, NotCacheable, SemanticCache
from cache.embedder import Vector
from cache.replay import assemble, replay
from proxy.auth import Principal
from proxy.metrics import Metrics
from proxy.tracing import upstream_span
from proxy.upstream import Upstream

AfterResponse = Callable[[], Coroutine[Any, Any, None]] | None
"""Work to do once the answer is sent (queueing an audit job)."""

log = logging.getLogger("vetcache.chat")

Outcome = Literal["hit", "miss", "bypass", "error"]


class Directives(BaseModel):
    """What the client asked of the cache, from its request headers."""

    namespace: str = "default"
    """``x-vetcache-namespace``."""
    lookup: bool = True
    """False with ``Cache-Control: no-cache``: go upstream, still store."""
    store: bool = True
    """False with ``Cache-Control: no-store``: do not store the answer."""
    threshold: float | None = None
    """``x-vetcache-threshold``: raises the threshold for this request."""
    may_loosen: bool = False
    """The admin key came along, so the threshold may also be lowered."""
    asker: str = ""
    """Who asked, for admission policies (set by the service from the caller's key)."""
    request_id: str = ""
    """The request's id (set by the service)."""


class CacheReport(BaseModel):
    """What the cache did for one request, for the ``x-vetcache-*`` headers (and its trace)."""

    outcome: Outcome
    """hit, miss, bypass (cache not asked) or error (cache failed; upstream answered)."""
    similarity: float | None = None
    """Best candidate's similarity (the served entry's on a hit)."""
    threshold: float | None = None
    """Threshold in force."""
    entry_id: str | None = None
    """Entry served, on a hit."""
    age_s: int | None = None
    """Seconds since the served entry was admitted."""
    shadow_hit: bool = False
    """Shadow mode: an entry would have answered (``entry_id``); the upstream did."""
    usage: dict[str, Any] | None = None
    """The JSON answer's token usage, for its trace (filled only while tracing is on)."""


class _Flights:
    """Identical misses in flight: the first caller (leader) asks the upstream, the others
    wait for its answer. A leader that fails leaves its followers to ask themselves."""

    def __init__(self) -> None:
        self._inflight: dict[str, asyncio.Future[dict[str, Any]]] = {}

    def follow(self, key: str) -> asyncio.Future[dict[str, Any]] | None:
        return self._inflight.get(key)

    def lead(self, key: str) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda f: f.cancelled() or f.exception())  # no "never retrieved"
        self._inflight[key] = future
        return future

    def land(
        self, key: str, future: asyncio.Future[dict[str, Any]], result: dict[str, Any] | None
    ) -> None:
        if self._inflight.get(key) is future:
            del self._inflight[key]
        if not future.done():
            if result is None:
                future.set_exception(RuntimeError("leader failed"))
            else:
                future.set_result(result)


class ChatService:
    """Answers chat requests from the cache or the upstream."""

    def __init__(
        self,
        upstream: Upstream,
        cache: SemanticCache | None,
        auditor: Auditor | None = None,
        guard: bool = False,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics or Metrics(CollectorRegistry())
        self.upstream = upstream
        self.cache = cache
        self.auditor = auditor
        self.guard = ContrastJudge() if guard else None
        self.guarded = 0
        self._flights = _Flights()
        self._background: set[asyncio.Task[None]] = set()

    def _key(self, body: Mapping[str, Any], who: Principal, how: Directives) -> CacheKey | None:
        if self.cache is None or not self.cache.settings.enabled:
            return None
        tracer = self.metrics.tracer
        try:
            if tracer is None:
                return self.cache.key(body, who.tenant, how.namespace)
            with tracer.start_as_current_span("vetcache.key"):
                return self.cache.key(body, who.tenant, how.namespace)
        except NotCacheable:
            return None

    async def _lookup(self, key: CacheKey, how: Directives) -> Lookup | None:
        assert self.cache is not None
        threshold = self.cache.threshold(how.namespace, how.threshold, how.may_loosen)
        lookup = await self.cache.lookup(key, threshold) if how.lookup else None
        hit = lookup.hit if lookup is not None else None
        if self.guard is not None and lookup is not None and hit is not None and not hit.exact:
            judgement = self.guard.decide(hit.entry.text, key.text, hit.similarity)
            if judgement.verdict == "false_positive":  # a would-be false hit: answer fresh
                self.guarded += 1
                self.metrics.guard_veto(key.namespace)
                return lookup.model_copy(
                    update={"outcome": "miss", "hit": None, "candidate": hit.entry}
                )
        if (
            lookup is not None
            and lookup.outcome != "error"
            and self.cache.settings.is_shadow(key.namespace)
        ):
            self.metrics.shadow_lookup(key.namespace, hit is not None)
            if hit is not None:  # answer from the upstream; audits see the would-be hit
                return lookup.model_copy(update={"outcome": "miss", "hit": None, "shadow_hit": hit})
        return lookup

    def _after(
        self, request_id: str, key: CacheKey, lookup: Lookup | None, who: Principal
    ) -> AfterResponse:
        """Work for after the answer is sent: count what a hit saved, hand the lookup to
        the auditor."""
        auditor = self.auditor if lookup is not None and lookup.outcome != "error" else None
        hit = lookup.hit if lookup is not None else None
        pending = lookup.pending if lookup is not None else None
        if auditor is None and hit is None and pending is None:
            return None

        async def after() -> None:
            if hit is not None:
                self._count_saved(key, hit.entry.response)
            if pending is not None and self.cache is not None:  # one more asker for it
                await self.cache.confirm(key, pending, _asker(who, request_id))
            if auditor is not None and lookup is not None:
                await auditor.after_lookup(
                    request_id=request_id, key=key, lookup=lookup, key_id=who.key_id
                )

        return after

    def _count_saved(self, key: CacheKey, response: str) -> None:
        try:
            usage = orjson.loads(response).get("usage") or {}
            prompt = int(usage.get("prompt_tokens") or 0)
            completion = int(usage.get("completion_tokens") or 0)
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
            return
        cost = self.upstream.cost(key.model, prompt, completion)
        self.metrics.saved(key.namespace, prompt + completion, cost)

    async def _chat(self, body: Mapping[str, Any]) -> dict[str, Any]:
        with self.metrics.timed("upstream"):
            completion = await self.upstream.chat(body)
            if self.metrics.tracer is not None:
                upstream_span(trace.get_current_span(), body["model"], completion.get("usage"))
            return completion

    async def _chat_stream(self, body: Mapping[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The upstream's chunks, timed (and traced) from the call to the last chunk."""
        started = time.perf_counter()
        tracer = self.metrics.tracer
        span = tracer.start_span("vetcache.upstream") if tracer is not None else None
        try:
            chunks = await self.upstream.chat_stream(body)
        except BaseException:
            self.metrics.stage("upstream", time.perf_counter() - started)
            if span is not None:
                span.end()
            raise

        async def timed() -> AsyncIterator[dict[str, Any]]:
            usage = None
            try:
                async for chunk in chunks:
                    usage = chunk.get("usage") or usage
                    yield chunk
            finally:
                self.metrics.stage("upstream", time.perf_counter() - started)
                if span is not None:
                    upstream_span(span, body["model"], usage)
                    span.end()

        return timed()

    def _admit_later(self, key: CacheKey, lookup: Lookup | None, body: Mapping[str, Any],
                     completion: dict[str, Any], how: Directives) -> None:  # fmt: skip
        cache = self.cache
        if cache is None or not how.store or not cache.admissible(body, completion):
            return
        if lookup is not None and lookup.shadow_hit is not None:
            return  # an entry would have answered: do not store a near-copy of it
        if lookup is not None and lookup.pending is not None:
            return  # one entry per exact key waits for its askers or its audit
        vector = lookup.vector if lookup is not None else None
        task = asyncio.create_task(self._admit(cache, key, vector, completion, how))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _admit(self, cache: SemanticCache, key: CacheKey, vector: Vector | None,
                     completion: dict[str, Any], how: Directives) -> None:  # fmt: skip
        """Admit; under an ``audited`` policy, queue the new entry's admission audit."""
        entry = await cache.admit(key, vector, completion, how.asker)
        audited = cache.settings.admission_for(key.namespace) == "audited"
        if entry is not None and entry.pending and audited and self.auditor is not None:
            await self.auditor.admission(request_id=how.request_id, key=key, entry=entry)

    async def complete(
        self, body: Mapping[str, Any], who: Principal, how: Directives, request_id: str = ""
    ) -> tuple[bytes, CacheReport, AfterResponse]:
        """A JSON answer (encoded), what the cache did, and what to do once it is sent."""
        how = how.model_copy(update={"asker": _asker(who, request_id), "request_id": request_id})
        key = self._key(body, who, how)
        if key is None:
            payload = orjson.dumps(await self._chat(body))
            return payload, CacheReport(outcome="bypass"), None
        lookup = await self._lookup(key, how)
        after = self._after(request_id, key, lookup, who)
        traced = self.metrics.tracer is not None
        if lookup is not None and lookup.hit is not None:
            report = _hit_report(lookup)
            if traced:  # the stored answer is sent as stored; only its trace reads it
                report.usage = orjson.loads(lookup.hit.entry.response).get("usage")
            return lookup.hit.entry.response.encode(), report, after
        completion = await self._once(key, lambda: self._chat(body), lookup, body, how)
        report = _miss_report(lookup)
        if traced:
            report.usage = completion.get("usage")
        return orjson.dumps(completion), report, after

    async def _once(
        self,
        key: CacheKey,
        call: Callable[[], Coroutine[Any, Any, dict[str, Any]]],
        lookup: Lookup | None,
        body: Mapping[str, Any],
        how: Directives,
    ) -> dict[str, Any]:
        leader = self._flights.follow(key.exact)
        if leader is not None:
            try:
                return await asyncio.shield(leader)
            except RuntimeError:
                return await call()
        future = self._flights.lead(key.exact)
        completion = None
        try:
            completion = await call()
            self._admit_later(key, lookup, body, completion, how)
            return completion
        finally:
            self._flights.land(key.exact, future, completion)

    async def stream(
        self, body: Mapping[str, Any], who: Principal, how: Directives, request_id: str = ""
    ) -> tuple[AsyncIterator[dict[str, Any]], CacheReport, AfterResponse]:
        """Chunks of a streamed answer, what the cache did, and what to do once it is sent."""
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        how = how.model_copy(update={"asker": _asker(who, request_id), "request_id": request_id})
        key = self._key(body, who, how)
        if key is None:
            return await self._chat_stream(body), CacheReport(outcome="bypass"), None
        lookup = await self._lookup(key, how)
        after = self._after(request_id, key, lookup, who)
        if lookup is not None and lookup.hit is not None:
            cached = orjson.loads(lookup.hit.entry.response)
            chunks = _aiter(replay(cached, include_usage=include_usage))
            return chunks, _hit_report(lookup), after
        leader = self._flights.follow(key.exact)
        if leader is not None:
            try:
                completion = await asyncio.shield(leader)
                chunks = _aiter(replay(completion, include_usage=include_usage))
                return chunks, _miss_report(lookup), after
            except RuntimeError:
                pass
        future = self._flights.lead(key.exact)
        try:
            upstream_chunks = await self._chat_stream(body)
        except BaseException:
            self._flights.land(key.exact, future, None)
            raise
        tee = self._tee(upstream_chunks, key, lookup, body, how, future)
        return tee, _miss_report(lookup), after

    async def _tee(
        self,
        chunks: AsyncIterator[dict[str, Any]],
        key: CacheKey,
        lookup: Lookup | None,
        body: Mapping[str, Any],
        how: Directives,
        future: asyncio.Future[dict[str, Any]],
    ) -> AsyncIterator[dict[str, Any]]:
        """Pass chunks through as they arrive; once the stream completed, hand the whole
        answer to waiting followers and the cache. An interrupted stream admits nothing."""
        seen: list[dict[str, Any]] = []
        completion = None
        try:
            async for chunk in chunks:
                seen.append(chunk)
                yield chunk
            completion = assemble(seen)
            if completion is not None:
                self._admit_later(key, lookup, body, completion, how)
        finally:
            self._flights.land(key.exact, future, completion)

    async def drain(self) -> None:
        """Wait for admissions still running (at shutdown)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


async def _aiter(chunks: Any) -> AsyncIterator[dict[str, Any]]:
    for chunk in chunks:
        yield chunk


def _asker(who: Principal, request_id: str) -> str:
    """An asker's identity for ``confirm`` admission: the API key (without auth, every
    request is its own asker)."""
    return who.key_id or f"request:{request_id}"


def _hit_report(lookup: Lookup) -> CacheReport:
    assert lookup.hit is not None
    entry = lookup.hit.entry
    return CacheReport(
        outcome="hit",
        similarity=lookup.hit.similarity,
        threshold=lookup.threshold,
        entry_id=entry.id,
        age_s=max(0, int(time.time() - entry.created_at)),
    )


def _miss_report(lookup: Lookup | None) -> CacheReport:
    if lookup is None:
        return CacheReport(outcome="bypass")
    shadow = lookup.shadow_hit
    return CacheReport(
        outcome="error" if lookup.outcome == "error" else "miss",
        similarity=lookup.best_similarity,
        threshold=lookup.threshold,
        entry_id=shadow.entry.id if shadow is not None else None,
        shadow_hit=shadow is not None,
    )
