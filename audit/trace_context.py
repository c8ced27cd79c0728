"""W3C trace context for audits: a job carries its request's ``traceparent``; the judge's
span links to it and the verdict names its trace id."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import Link, Span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_W3C = TraceContextTextMapPropagator()


def traceparent(span: Span | None = None) -> str:
    """The W3C ``traceparent`` of ``span`` (default: the current one); "" when none."""
    span = span or trace.get_current_span()
    if not span.get_span_context().is_valid:
        return ""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get("traceparent", "")


def link_to(value: str) -> list[Link]:
    """A link to the span a ``traceparent`` names (none if it is empty or malformed)."""
    if not value:
        return []
    span_context = trace.get_current_span(_W3C.extract({"traceparent": value})).get_span_context()
    return [Link(span_context)] if span_context.is_valid else []


def trace_id(value: str) -> str:
    """The trace id (32 hex digits) in a ``traceparent``; "" when there is none."""
    parts = value.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else ""
