"""OpenTelemetry traces through a real gateway: the bundled embedder, the in-process store and
judge, the fake upstream over HTTP; spans caught by an in-memory exporter installed as the
process's tracer provider (as an application embedding vetcache would install its own)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from audit.schema import Verdict
from proxy.app import create_app
from proxy.settings import Settings
from tests.conftest import child_log, free_port, stop, vetcache, wait_http

pytestmark = pytest.mark.integration

QUESTION = "How do I reverse a list in Python?"
PARAPHRASE = "How can I reverse a Python list?"
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the first module to need one installs it
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def open_app(
    make_settings: Callable[..., Settings], exporter: InMemorySpanExporter
) -> Iterator[Callable[..., TestClient]]:
    """A gateway built from settings alone (its cache, in-process store and judge)."""
    opened: list[TestClient] = []

    def build(**overrides: object) -> TestClient:
        client = TestClient(create_app(make_settings(**overrides)))
        client.__enter__()
        opened.append(client)
        return client

    exporter.clear()
    yield build
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def client(open_app: Callable[..., TestClient]) -> TestClient:
    return open_app(
        cache={"enabled": True, "threshold": 0.9, "lookup_budget_ms": 5000},
        audit={"burn_in": 5},  # every hit judged, by the in-process worker
        tracing={"enabled": True},
        admin_key="sk-admin",
    )


def ask(client: TestClient, text: str, namespace: str, **extra: object) -> tuple[str, str]:
    """(x-vetcache, request id) of one chat request."""
    headers = {"x-vetcache-namespace": namespace, **extra.pop("headers", {})}  # type: ignore[dict-item]
    body = {"model": "fake-gpt", "messages": [{"role": "user", "content": text}], **extra}
    response = client.post("/v1/chat/completions", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.headers["x-vetcache"], response.headers["x-request-id"]


def attrs(span: ReadableSpan) -> Mapping[str, Any]:
    assert span.attributes is not None
    return span.attributes


def began(span: ReadableSpan) -> int:
    assert span.start_time is not None
    return span.start_time


def ended(span: ReadableSpan) -> int:
    assert span.end_time is not None
    return span.end_time


def request_trace(exporter: InMemorySpanExporter, request_id: str) -> list[ReadableSpan]:
    """The finished spans of the request's trace, the gateway span first."""
    spans = exporter.get_finished_spans()
    [root] = [s for s in spans if attrs(s).get("vetcache.request_id") == request_id
              and s.kind == trace.SpanKind.SERVER]  # fmt: skip
    same = [s for s in spans if s.context.trace_id == root.context.trace_id and s is not root]
    return [root, *same]


def children(spans: list[ReadableSpan]) -> dict[str, ReadableSpan]:
    root = spans[0]
    found = {s.name: s for s in spans[1:] if s.parent and s.parent.span_id == root.context.span_id}
    return found


def admitted(client: TestClient, text: str, namespace: str) -> None:
    for _ in range(100):
        if ask(client, text, namespace, headers={"cache-control": "no-store"})[0] == "hit":
            return
        time.sleep(0.05)
    raise AssertionError("never admitted")


def test_a_miss_then_a_hit(client: TestClient, exporter: InMemorySpanExporter) -> None:
    namespace = uuid.uuid4().hex[:12]
    outcome, miss_id = ask(client, QUESTION, namespace)
    assert outcome == "miss"
    admitted(client, QUESTION, namespace)
    outcome, hit_id = ask(client, PARAPHRASE, namespace)
    assert outcome == "hit"

    miss = request_trace(exporter, miss_id)
    root = miss[0]
    assert root.name == "POST /v1/chat/completions"
    assert attrs(root)["vetcache.cache.outcome"] == "miss"
    assert attrs(root)["gen_ai.request.model"] == "fake-gpt"
    assert attrs(root)["vetcache.namespace"] == namespace
    assert attrs(root)["vetcache.embedding_model"].startswith("bundled:all-MiniLM-L6-v2")
    assert attrs(root)["gen_ai.usage.input_tokens"] > 0
    assert attrs(root)["http.response.status_code"] == 200
    stages = children(miss)
    assert {"vetcache.key", "vetcache.exact_lookup", "vetcache.embed", "vetcache.vector_search",
            "chat fake-gpt", "vetcache.admit"} <= set(stages)  # fmt: skip
    upstream = stages["chat fake-gpt"]
    assert attrs(upstream)["gen_ai.operation.name"] == "chat"
    assert attrs(upstream)["gen_ai.usage.output_tokens"] > 0
    # The stages ran in order, inside the request's span.
    assert ended(stages["vetcache.key"]) <= began(stages["vetcache.embed"])
    assert ended(stages["vetcache.vector_search"]) <= began(upstream)
    assert began(root) <= began(stages["vetcache.key"]) <= ended(upstream) <= ended(root)

    hit = request_trace(exporter, hit_id)
    attributes = attrs(hit[0])
    assert attributes["vetcache.cache.outcome"] == "hit"
    assert attributes["vetcache.cache.similarity"] > 0.9
    assert attributes["vetcache.cache.threshold"] == 0.9
    assert len(attributes["vetcache.cache.entry_id"]) == 32
    assert attributes["gen_ai.usage.output_tokens"] > 0  # the cached answer's usage
    assert {"vetcache.embed", "vetcache.vector_search"} <= set(children(hit))
    assert not any(name.startswith("chat ") for name in children(hit))  # no upstream call

    # No prompt text in any span unless tracing.capture_text says so.
    for span in exporter.get_finished_spans():
        assert not any(QUESTION in str(v) or PARAPHRASE in str(v) for v in attrs(span).values())


def test_a_streamed_miss(client: TestClient, exporter: InMemorySpanExporter) -> None:
    namespace = uuid.uuid4().hex[:12]
    outcome, request_id = ask(client, QUESTION, namespace, stream=True)
    assert outcome == "miss"
    spans = request_trace(exporter, request_id)
    assert attrs(spans[0])["vetcache.cache.outcome"] == "miss"
    stages = children(spans)
    assert {"vetcache.key", "vetcache.embed", "vetcache.vector_search", "chat fake-gpt"} <= set(
        stages
    )
    upstream = stages["chat fake-gpt"]
    assert attrs(upstream)["gen_ai.request.model"] == "fake-gpt"
    # It lasts until the last chunk went out, not until the first arrived: the stream is
    # relayed inside the request's span, and the upstream span ends with it.
    assert ended(stages["vetcache.vector_search"]) <= began(upstream)
    assert ended(upstream) <= ended(spans[0])


def test_the_callers_trace_continues(client: TestClient, exporter: InMemorySpanExporter) -> None:
    traceparent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    _, request_id = ask(client, QUESTION, "t", headers={"traceparent": traceparent})
    root = request_trace(exporter, request_id)[0]
    assert f"{root.context.trace_id:032x}" == CALLER_TRACE
    assert root.parent is not None and f"{root.parent.span_id:016x}" == CALLER_SPAN


def test_a_verdict_leads_to_its_trace(client: TestClient, exporter: InMemorySpanExporter) -> None:
    namespace = uuid.uuid4().hex[:12]
    ask(client, QUESTION, namespace)
    admitted(client, QUESTION, namespace)
    _, request_id = ask(client, PARAPHRASE, namespace)
    root = request_trace(exporter, request_id)[0]
    trace_id = f"{root.context.trace_id:032x}"

    verdict = None
    for _ in range(100):  # the in-process worker judges in the background
        listed = client.get(
            "/admin/verdicts",
            params={"namespace": namespace},
            headers={"authorization": "Bearer sk-admin"},
        )
        assert listed.status_code == 200, listed.text
        found = [v for v in listed.json()["data"] if v["job"]["request_id"] == request_id]
        if found:
            verdict = Verdict.model_validate(found[0])
            assert found[0]["trace_id"] == trace_id  # in the admin API as it is stored
            break
        time.sleep(0.05)
    assert verdict is not None, "the hit was never judged"
    assert verdict.trace_id == trace_id
    [judged] = [s for s in exporter.get_finished_spans() if s.name == "vetcache.judge"
                and attrs(s).get("vetcache.request_id") == request_id]  # fmt: skip
    assert judged.context.trace_id != root.context.trace_id  # its own trace, linked:
    assert [link.context.span_id for link in judged.links] == [root.context.span_id]
    assert attrs(judged)["vetcache.verdict"] == verdict.verdict


def test_prompt_text_only_when_allowed(
    open_app: Callable[..., TestClient], exporter: InMemorySpanExporter
) -> None:
    client = open_app(
        cache={"enabled": True, "lookup_budget_ms": 5000},
        tracing={"enabled": True, "capture_text": True},
    )
    _, request_id = ask(client, QUESTION, "t")
    assert attrs(request_trace(exporter, request_id)[0])["vetcache.prompt"] == QUESTION


def test_tracing_off_emits_nothing(
    open_app: Callable[..., TestClient], exporter: InMemorySpanExporter
) -> None:
    client = open_app(cache={"enabled": True, "lookup_budget_ms": 5000})
    exporter.clear()
    ask(client, QUESTION, "t")
    assert [s for s in exporter.get_finished_spans() if s.name != "vetcache.judge"] == []


class _Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP trace receiver: keeps each export request's spans."""

    received: ClassVar[list[ExportTraceServiceRequest]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        if self.path == "/v1/traces":
            self.received.append(ExportTraceServiceRequest.FromString(body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *_args: object) -> None:  # quiet
        return


def test_a_serve_process_exports_over_otlp_http(fake_upstream: str, tmp_path: Path) -> None:
    # The process wiring (tracing.install): `vetcache serve` with tracing on sends its spans,
    # batched, to an OTLP/HTTP endpoint, here a receiver on 127.0.0.1.
    collector = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{collector.server_address[1]}/v1/traces"
    config = tmp_path / "c.yaml"
    config.write_text(
        "auth: {enabled: false}\naccess_log: false\n"
        "cache: {enabled: true, lookup_budget_ms: 5000}\n"
        f"tracing: {{enabled: true, exporter: otlp-http, endpoint: '{endpoint}', "
        "service_name: vetcache-test}\n"
        f"model_list: [{{model_name: fake-gpt, model: openai/fake-gpt, api_base: '{fake_upstream}'}}]\n"
    )
    port = free_port()
    # A short batch delay so the test does not wait the default 5 s for the export.
    gateway = vetcache(
        "serve", "--config", str(config), "--port", str(port),
        env={"OTEL_BSP_SCHEDULE_DELAY": "100"},
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", gateway, timeout=120)
        reply = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            json={"model": "fake-gpt", "messages": [{"role": "user", "content": QUESTION}]},
            headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"},
            timeout=30,
        )
        assert reply.status_code == 200, reply.text
        deadline = time.monotonic() + 20
        names: set[str] = set()
        while "POST /v1/chat/completions" not in names:
            assert time.monotonic() < deadline, f"no request span exported: {child_log(gateway)}"
            time.sleep(0.1)
            for request in list(_Collector.received):
                for resource in request.resource_spans:
                    service = {a.key: a.value.string_value for a in resource.resource.attributes}
                    assert service["service.name"] == "vetcache-test"
                    for scope in resource.scope_spans:
                        names |= {s.name for s in scope.spans if s.trace_id.hex() == CALLER_TRACE}
        assert {"vetcache.embed", "vetcache.vector_search", "chat fake-gpt"} <= names
    finally:
        stop(gateway)
        collector.shutdown()
