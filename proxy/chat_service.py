"""A chat request's way through the cache and the upstream, for JSON and streams alike:

    resolve: key (or bypass) -> lookup and the serving policy's decision (unless
             ``Cache-Control: no-cache``) -> report -> the work for after the answer
    answer:  served -> from the entry | else one upstream call per exact key in flight
             (followers share the leader's answer) -> admit (unless ``no-store``)

How the answer is produced and written is the one difference between JSON and streams
(``proxy.answers``). The route (``proxy.routes.chat``) turns the reply into HTTP; this
module knows no HTTP.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar

import orjson
from prometheus_client import CollectorRegistry

from audit import Auditor
from cache import CacheKey, Lookup, NotCacheable, Outcome, SemanticCache
from cache.embedder import Vector
from proxy.answers import Answer, AnswerForm, Chunks, JsonAnswer, StreamAnswer, UpstreamCalls
from proxy.auth import Principal
from proxy.directives import Directives
from proxy.flights import Completion, Flight, Flights
from proxy.metrics import Metrics
from proxy.report import CacheReport, report
from proxy.speculation import Speculation
from proxy.tracing import Tracing
from proxy.upstream import Upstream

AfterResponse = Callable[[], Coroutine[Any, Any, None]] | None
"""Work to do once the answer is sent (counting what a hit saved, queueing an audit job)."""

log = logging.getLogger("vetcache.chat")
T = TypeVar("T")


@dataclass(frozen=True)
class Resolution:
    """What the cache makes of one request, before any answer is produced."""

    key: CacheKey | None
    """None: the cache is off or the request is not cacheable (bypass)."""
    lookup: Lookup | None
    """None: not looked up (bypass, or ``Cache-Control: no-cache``)."""
    report: CacheReport
    """What the headers, metrics, access log and trace say."""
    after: AfterResponse
    """The work for after the answer."""
    asker: str
    """Who asked, for ``confirm`` admission: the API key (without auth, the request)."""


@dataclass(frozen=True)
class Reply(Generic[T]):
    """An answer to write, what the cache did, and what to do once it is sent."""

    answer: Answer[T]
    report: CacheReport
    after: AfterResponse


class ChatService:
    """Answers chat requests from the cache or the upstream."""

    def __init__(
        self,
        upstream: Upstream,
        cache: SemanticCache | None,
        auditor: Auditor | None = None,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.tracing = tracing or Tracing.off()
        self.metrics = metrics or Metrics(CollectorRegistry(), tracing=self.tracing)
        self.upstream = upstream
        self.cache = cache
        self.auditor = auditor
        self.calls = UpstreamCalls(upstream, self.metrics, self.tracing)
        self._flights = Flights()
        self._background: set[asyncio.Task[None]] = set()

    async def complete(
        self,
        body: Mapping[str, Any],
        who: Principal,
        how: Directives,
        request_id: str = "",
        *,
        calls: UpstreamCalls | None = None,
        bypass: str | None = None,
    ) -> Reply[bytes]:
        """A JSON answer. ``calls``: how the upstream is asked (default: chat completions);
        ``bypass``: why the cache must not be asked (the request is passed through)."""
        form = JsonAnswer(calls or self.calls)
        return await self.answer(body, who, how, request_id, form, bypass)

    async def stream(
        self,
        body: Mapping[str, Any],
        who: Principal,
        how: Directives,
        request_id: str = "",
        *,
        calls: UpstreamCalls | None = None,
        bypass: str | None = None,
    ) -> Reply[Chunks]:
        """A streamed answer (``calls`` and ``bypass`` as for ``complete``)."""
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        form = StreamAnswer(calls or self.calls, include_usage)
        return await self.answer(body, who, how, request_id, form, bypass)

    async def answer(
        self,
        body: Mapping[str, Any],
        who: Principal,
        how: Directives,
        request_id: str,
        form: AnswerForm[T],
        bypass: str | None = None,
    ) -> Reply[T]:
        """Resolve, then answer in ``form``: from the entry served, else from the upstream
        (the call the exact layer's miss started, under ``cache.speculate``)."""
        speculation = Speculation(self._flights, lambda: form.start(body))
        try:
            resolved = await self.resolve(body, who, how, request_id, speculation, bypass)
        except BaseException:
            speculation.drop()
            raise
        finally:
            speculation.close()
        served = resolved.lookup.hit if resolved.lookup is not None else None
        if served is not None:
            self._speculated(resolved, speculation.drop(), "cancelled")
            answer = form.cached(served.entry.response)
        else:
            answer = await self._fresh(body, how, request_id, resolved, form, speculation)
        return Reply(answer, resolved.report, resolved.after)

    async def resolve(
        self,
        body: Mapping[str, Any],
        who: Principal,
        how: Directives,
        request_id: str,
        speculation: Speculation | None = None,
        bypass: str | None = None,
    ) -> Resolution:
        """The one resolution step: key, lookup and decision, report, after-work.
        ``speculation`` begins when the exact layer misses, if the namespace speculates;
        ``bypass`` (a reason) skips the cache."""
        asker = who.key_id or f"request:{request_id}"
        key = bypass if bypass is not None else self._key(body, who, how)
        bypass = key if isinstance(key, str) else None
        key = None if isinstance(key, str) else key
        lookup = None
        if key is not None and how.lookup:
            assert self.cache is not None
            threshold = self.cache.threshold(how.namespace, how.threshold, how.may_loosen)
            hook = None
            if speculation is not None and self.cache.settings.speculates(key.namespace):
                hook = partial(speculation.begin, key.exact)
            lookup = await self.cache.lookup(
                key, threshold, max_age_s=how.max_age_s, on_exact_miss=hook
            )
            shadow_mode = self.cache.settings.is_shadow(key.namespace)
            self.metrics.lookup(key.namespace, lookup, shadow_mode, key.tenant)
        after = self._after(request_id, key, lookup, who, asker)
        return Resolution(key, lookup, report(lookup, bypass), after, asker)

    def _key(
        self, body: Mapping[str, Any], who: Principal, how: Directives
    ) -> CacheKey | str | None:
        """The request's key; or why it is not cacheable; or None with the cache off."""
        if self.cache is None or not self.cache.settings.enabled:
            return None
        with self.tracing.span("vetcache.key"):
            try:
                return self.cache.key(body, who.tenant, how.namespace)
            except NotCacheable as exc:
                return exc.reason

    async def _fresh(
        self,
        body: Mapping[str, Any],
        how: Directives,
        request_id: str,
        resolved: Resolution,
        form: AnswerForm[T],
        speculation: Speculation,
    ) -> Answer[T]:
        """An answer from the upstream, shared among identical misses in flight: the call
        speculation started (this request leads its flight), else one started now."""
        key = resolved.key
        if key is None:
            return await form.fresh(body, Flight.alone(), lambda completion, answered_by: None)
        started, flight = speculation.call, speculation.flight
        self._speculated(resolved, started is not None, "used")
        if flight is None:
            flight = self._flights.join(key.exact)
        if not flight.leads:
            shared = await flight.follow()
            if shared is not None:
                return form.shared(shared)
            flight = Flight.alone()  # the leader failed: ask without leading

        def admit(completion: Completion, answered_by: str | None) -> None:
            self._admit_later(key, resolved, body, completion, how, request_id, answered_by)

        return await form.fresh(body, flight, admit, started)

    def _speculated(self, resolved: Resolution, started: bool, outcome: str) -> None:
        """Count a speculative call ``used`` by a miss or ``cancelled`` by a hit."""
        if started and resolved.key is not None:
            key = resolved.key
            self.metrics.speculation.count(key.namespace, key.tenant, outcome)

    def _after(
        self,
        request_id: str,
        key: CacheKey | None,
        lookup: Lookup | None,
        who: Principal,
        asker: str,
    ) -> AfterResponse:
        """Work for after the answer is sent: count what a hit saved (and under
        ``cache.sliding_ttl`` give the entry its TTL again), count one more asker for a
        pending entry, hand the lookup to the auditor, repeat it under the version the
        namespace migrates to (``cache.version_shadow``)."""
        if key is None or lookup is None or lookup.outcome == Outcome.FAIL_OPEN:
            return None
        cache = self.cache
        assert cache is not None
        hit, pending, auditor = lookup.hit, lookup.pending, self.auditor
        migrating = cache.versions.target(key.namespace) is not None
        if hit is None and pending is None and auditor is None and not migrating:
            return None

        async def after() -> None:
            if hit is not None:
                self._count_saved(key, hit.entry.response)
                await cache.served(hit.entry)
            if pending is not None:
                await cache.confirm(key, pending, asker)
            if auditor is not None:
                await auditor.after_lookup(
                    request_id=request_id, key=key, lookup=lookup, key_id=who.key_id
                )
            if migrating:
                compared = await cache.shadow.compare(key, lookup)
                if compared is not None and auditor is not None:
                    shadow_key, would = compared
                    await auditor.rollout_hit(request_id=request_id, key=shadow_key, lookup=would)

        return after

    def _count_saved(self, key: CacheKey, response: str) -> None:
        try:
            usage = orjson.loads(response).get("usage") or {}
            prompt = int(usage.get("prompt_tokens") or 0)
            completion = int(usage.get("completion_tokens") or 0)
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
            return
        cost = self.upstream.cost(key.model, prompt, completion)
        self.metrics.saved(key.namespace, prompt + completion, cost, key.tenant)

    def _admit_later(
        self,
        key: CacheKey,
        resolved: Resolution,
        body: Mapping[str, Any],
        completion: Completion,
        how: Directives,
        request_id: str,
        answered_by: str | None,
    ) -> None:
        """Admit a complete fresh answer (given by the alias ``answered_by``) in the
        background, unless the client said ``no-store``, the admission rules refuse it, an
        entry would have answered (shadow mode: no near-copy of it), or an entry for this
        exact key awaits its askers."""
        cache, lookup = self.cache, resolved.lookup
        if cache is None or not how.store:
            return
        if not cache.admissible(body, completion, answered_by):
            return
        if lookup is not None and (lookup.shadow or lookup.pending is not None):
            return
        vector = lookup.vector if lookup is not None else None
        task = asyncio.create_task(
            self._admit(
                cache, key, vector, completion, resolved.asker, request_id, answered_by, how.ttl_s
            )
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _admit(
        self,
        cache: SemanticCache,
        key: CacheKey,
        vector: Vector | None,
        completion: Completion,
        asker: str,
        request_id: str,
        answered_by: str | None,
        ttl_s: int | None,
    ) -> None:
        """Admit (to live ``ttl_s``, the request's TTL: None, the configured one); under an
        ``audited`` policy, queue the new entry's admission audit."""
        entry = await cache.admit(key, vector, completion, asker, answered_by, ttl_s)
        audited = cache.settings.admission_for(key.namespace) == "audited"
        if entry is not None and entry.pending and audited and self.auditor is not None:
            await self.auditor.admission(request_id=request_id, key=key, entry=entry)

    async def drain(self) -> None:
        """Wait for admissions still running (at shutdown)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
