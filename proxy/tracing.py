"""OpenTelemetry traces: one per request, continued from the caller's ``traceparent``, with
child spans for each stage (key, exact check, embedding, vector search, upstream call,
admission), linked from the verdict of its audit. Off by default.

W3C trace context helpers shared with the audit worker are in ``audit.trace_context``.
The spans go through the OpenTelemetry API to the process's tracer provider. ``install``
sets one up from ``tracing:`` (OTLP over gRPC or HTTP, a service name, a sampling ratio)
unless the process already has one (an embedding application's, or a test's in-memory
exporter). With tracing off nothing here runs on the request path: the middleware and the
stage timer check ``tracer`` is None, so the hit path pays nothing for the feature.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pydantic import BaseModel, ConfigDict, Field

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


def request_span(
    span: Span,
    *,
    model: str,
    namespace: str,
    outcome: str,
    similarity: float | None,
    threshold: float | None,
    entry_id: str | None,
    embedding_model: str,
    usage: Mapping[str, Any] | None = None,
    prompt: str | None = None,
) -> None:
    """What the cache did for the request, on the gateway span (``prompt`` only when the
    config allows prompt text in spans)."""
    if not span.is_recording():
        return
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
        "vetcache.namespace": namespace,
        "vetcache.cache.outcome": outcome,
        "vetcache.embedding_model": embedding_model,
        **_usage(usage),
    }
    for name, value in (
        ("vetcache.cache.similarity", similarity),
        ("vetcache.cache.threshold", threshold),
        ("vetcache.cache.entry_id", entry_id),
        ("vetcache.prompt", prompt),
    ):
        if value is not None:
            attributes[name] = value
    span.set_attributes(attributes)
