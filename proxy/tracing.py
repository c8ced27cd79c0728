"""OpenTelemetry traces: one per request, continued from the caller's ``traceparent``, with
child spans for each stage (key, exact check, embedding, vector search, upstream call,
admission), linked from the verdict of its audit. Off by default.

W3C trace context helpers shared with the audit worker are in ``audit.trace_context``.
The spans go through the OpenTelemetry API to the process's tracer provider. ``install``
sets one up from ``tracing:`` (OTLP over gRPC or HTTP, a service name, a sampling ratio)
unless the process already has one (an embedding application's, or a test's in-memory
exporter). ``Tracing`` is what the gateway holds: with tracing off its every call is a no-op
that starts nothing (no span, no context), so callers never ask whether tracing is on and
the hit path pays a method call for the feature.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Literal

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import BaseModel, ConfigDict, Field

from proxy.report import CacheReport

log = logging.getLogger("vetcache.tracing")

TRACER_NAME = "vetcache"
_W3C = TraceContextTextMapPropagator()


class TracingSettings(BaseModel):
    """``tracing:`` in the config."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = False
    """Emit traces (nothing is traced, or exported, otherwise)."""
    exporter: Literal["otlp-grpc", "otlp-http"] = "otlp-grpc"
    """How spans leave the process."""
    endpoint: str | None = None
    """Collector address; default the exporter's (``OTEL_EXPORTER_OTLP_ENDPOINT``, else
    localhost:4317 for gRPC, http://localhost:4318/v1/traces for HTTP)."""
    service_name: str = Field(default="vetcache", min_length=1, max_length=128)
    """``service.name`` of the spans."""
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    """Share of new traces kept; a caller's sampled ``traceparent`` is always followed."""
    capture_text: bool = False
    """Put prompt text in span attributes (never by default: prompts are user data)."""


def install(settings: TracingSettings) -> bool:
    """Give the process a tracer provider exporting as ``settings`` say, unless it has one;
    whether tracing is on."""
    if not settings.enabled:
        return False
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return True  # the process (an embedding app, a test) set its own
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.service_name}),
        sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
    )
    # Batched off the request path; the SDK flushes what is left when the process exits.
    provider.add_span_processor(BatchSpanProcessor(_exporter(settings)))
    trace.set_tracer_provider(provider)
    # Never a password the endpoint URL may carry: only what follows its "user:pass@".
    where = settings.endpoint.rsplit("@", 1)[-1] if settings.endpoint else "the default endpoint"
    log.info("tracing: %s to %s", settings.exporter, where)
    return True


def _exporter(settings: TracingSettings) -> Any:
    endpoint: dict[str, Any] = {"endpoint": settings.endpoint} if settings.endpoint else {}
    if settings.exporter == "otlp-http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(**endpoint)
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcExporter,
    )

    return GrpcExporter(**endpoint)


def tracer(settings: TracingSettings) -> Tracer | None:
    """vetcache's tracer when tracing is on, else None (and nothing is traced)."""
    return trace.get_tracer(TRACER_NAME) if install(settings) else None


def incoming(headers: list[tuple[bytes, bytes]]) -> Context:
    """The caller's trace context from its ``traceparent``/``tracestate`` headers."""
    carrier = {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in headers
        if name in (b"traceparent", b"tracestate")
    }
    return _W3C.extract(carrier)


def upstream_span(span: Span, model: str, usage: Mapping[str, Any] | None) -> None:
    """Name and describe an upstream call's span under the OpenTelemetry GenAI conventions."""
    if not span.is_recording():
        return
    span.update_name(f"chat {model}")
    span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.request.model": model})
    span.set_attributes(_usage(usage))


def _usage(usage: Mapping[str, Any] | None) -> dict[str, int]:
    if not isinstance(usage, Mapping):
        return {}
    found = {
        "gen_ai.usage.input_tokens": usage.get("prompt_tokens"),
        "gen_ai.usage.output_tokens": usage.get("completion_tokens"),
    }
    return {name: value for name, value in found.items() if isinstance(value, int)}


TRACED_PREFIXES = ("/v1/", "/admin/", "/healthz", "/readyz", "/metrics")
"""Paths named in span names as they are (any other path: the method only, so a scan of
random URLs cannot mint span names without bound)."""


class Tracing:
    """The gateway's tracing, on or off (``tracing.enabled``)."""

    def __init__(self, settings: TracingSettings, embedding_model: str = "") -> None:
        self.tracer: Tracer | None = tracer(settings)
        self.capture_text = settings.capture_text
        self.embedding_model = embedding_model

    @classmethod
    def off(cls) -> Tracing:
        """Tracing that traces nothing (the default of what takes one)."""
        return cls(TracingSettings())

    def span(self, name: str) -> AbstractContextManager[Span]:
        """A child span of the current one for the block (nothing when off)."""
        if self.tracer is None:
            return nullcontext(INVALID_SPAN)
        return self.tracer.start_as_current_span(name)

    def current(self) -> Span:
        """The current span (a no-op one when off)."""
        return INVALID_SPAN if self.tracer is None else trace.get_current_span()

    def start_span(self, name: str) -> Span:
        """A span the caller ends itself (a stream's, at its last chunk); a no-op one when
        off."""
        return INVALID_SPAN if self.tracer is None else self.tracer.start_span(name)

    @contextmanager
    def server(
        self, method: str, path: str, headers: list[tuple[bytes, bytes]], request_id: str
    ) -> Iterator[Span | None]:
        """The gateway span of one HTTP request, continuing the caller's trace (W3C
        ``traceparent``); None when off."""
        if self.tracer is None:
            yield None
            return
        with self.tracer.start_as_current_span(
            f"{method} {path}" if path.startswith(TRACED_PREFIXES) else method,
            context=incoming(headers),
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "url.path": path,
                "vetcache.request_id": request_id,
            },
        ) as span:
            yield span

    @staticmethod
    def status(span: Span | None, status: int) -> None:
        """The HTTP status on the gateway span (an error status from 500 up)."""
        if span is None:
            return
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(StatusCode.ERROR)

    def chat(
        self,
        span: Span | None,
        body: Mapping[str, Any],
        namespace: str,
        report: CacheReport,
        usage: Callable[[], Mapping[str, Any] | None],
    ) -> None:
        """What the cache did for a chat request, on its gateway span (``usage`` is only
        asked for when the span records; the prompt only with ``capture_text``)."""
        if span is None or not span.is_recording():
            return
        model = str(body.get("model"))
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": model,
            "vetcache.namespace": namespace,
            "vetcache.cache.outcome": report.outcome.value,
            "vetcache.embedding_model": self.embedding_model,
            **_usage(usage()),
        }
        for name, value in (
            ("vetcache.cache.similarity", report.similarity),
            ("vetcache.cache.threshold", report.threshold),
            ("vetcache.cache.entry_id", report.entry_id),
            ("vetcache.cache.refused", report.refused),
            ("vetcache.embedder", report.embedder),
            ("vetcache.cache.verifier_score", report.verifier_score),
            ("vetcache.prompt", _prompt(body) if self.capture_text else None),
        ):
            if value is not None:
                attributes[name] = value
        span.set_attributes(attributes)


def _prompt(body: Mapping[str, Any]) -> str | None:
    """The last message's text, when it is plain text."""
    messages = body.get("messages") or [{}]
    content = messages[-1].get("content") if isinstance(messages[-1], Mapping) else None
    return content if isinstance(content, str) else None
