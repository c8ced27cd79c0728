"""A small OpenAI-compatible upstream simulator for tests, load tests and demos.

It answers ``/v1/chat/completions`` (JSON and SSE streaming), ``/v1/embeddings`` and
``/v1/models`` with deterministic output derived from the request, after a configurable
latency, so a test or benchmark can run the whole gateway without a paid key.

Answers: ``"[<model>] reply <digest>: <last user text>"`` where ``digest`` is the first 8 hex
digits of a SHA-256 over the messages; ``max_tokens`` truncates the answer by words and sets
``finish_reason: "length"``. Embeddings: a unit vector seeded from the input text (384
dimensions unless ``dimensions`` asks otherwise); ``encoding_format: base64`` is honoured.
Given an ``Embedder`` (``vetcache fake-upstream --embeddings model``), ``/v1/embeddings``
answers that model's real vectors instead, computed off the event loop by the embedder, and
without the simulated latency (the model's own time is the latency): a local embedding
server, so another gateway can embed with the same model vetcache runs.

Faults are chosen by the upstream model name, so a gateway config can point one alias at a
faulty "model" while the others stay healthy:

- ``error-<status>``: answer that HTTP status with an OpenAI-style error body;
- ``sleep-<ms>``: wait that much longer before answering (to trigger client timeouts);
- ``truncate``: stream half the answer, then drop the connection without a final chunk;
- ``echo-<status>``: answer that status with an error body whose message quotes the prompt
  back (as some providers do: the gateway must not log it);
- ``html``: a 200 HTML page (a captive portal or a misrouted proxy) quoting the answer;
- ``no-choices``: a 200 JSON object with the answer text but no ``choices``;
- ``finish-null``: answer with ``finish_reason: null`` (JSON and streams);
- ``refusal``: a refusal (``message.refusal`` set, no content; streamed as ``delta.refusal``);
- ``empty``: an empty answer (``content: ""``, finish ``stop``);
- ``function-call``: a legacy ``function_call`` answer with finish ``stop``;
- ``tool-call``: a call of the tool ``lookup`` with ``{"q": <the answer text>}`` (no
  content), finish ``tool_calls`` (streamed as one ``delta.tool_calls`` chunk);
- ``flaky-<n>[-<tag>]``: answer 503 to the first ``n`` calls with these messages, then answer;
- ``retry-after-<s>``: answer 429 with ``Retry-After: <s>`` to the first such call;
- ``slow-stream-<ms>``: stream one chunk per word, ``ms`` apart (after the first).

Scripted judge replies, for testing judges that call a model:

- ``judge-<score>``: ``{"score": <score>, "reason": "scripted"}``;
- ``judge-malformed``: prose, not JSON;
- ``judge-flaky``: prose on odd-numbered calls, ``{"score": 1.0, ...}`` on even ones.

``GET /fake/requests`` reports how many requests each route and model has received since
start, so a test can tell whether a call reached the upstream (and how often: retries), and
how many streams of each model ended (``"stream finished <model>"``) or were broken off by
the client (``"stream aborted <model>"``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import random
import struct
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from proxy.fake_replies import (
    chat_stream,
    count_tokens,
    error_reply,
    json_reply,
    make_answer,
    odd_answer,
    text_of,
)

if TYPE_CHECKING:
    from cache.embedder import Embedder, SentenceTransformerEmbedder
    from cache.settings import EmbeddingBackend


DEFAULT_DIMENSIONS = 384


def make_embedding(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """A unit vector seeded from ``text``."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    rng = random.Random(seed)  # noqa: S311 - test data, not security
    vec = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in vec)) or 1.0
    return [v / norm for v in vec]


def model_embedder(
    backend: EmbeddingBackend | None = None, onnx_dir: Path | None = None
) -> SentenceTransformerEmbedder:
    """The bundled model as a gateway with default cache settings builds it, on ``backend``
    (default: the gateway's), its ONNX export kept in ``onnx_dir`` (default: the gateway's)."""
    from cache import CacheSettings, build_embedder

    chosen: dict[str, Any] = {"onnx_dir": str(onnx_dir) if onnx_dir else None}
    if backend is not None:
        chosen["embedding_backend"] = backend
    return build_embedder(CacheSettings(**chosen))


class FakeUpstream:
    """The simulator's state: its base latency and, optionally, a real embedding model. One
    instance per server."""

    def __init__(self, latency_ms: float = 0.0, embedder: Embedder | None = None) -> None:
        self.latency_s = max(latency_ms, 0.0) / 1000.0
        self.embedder = embedder
        self.received: Counter[str] = Counter()
        self.calls: Counter[tuple[str, str]] = Counter()

    async def _wait(self, model: str, simulated: bool = True) -> None:
        delay = self.latency_s if simulated else 0.0
        if model.startswith("sleep-"):
            delay += int(model.removeprefix("sleep-")) / 1000.0
        if delay > 0:
            await asyncio.sleep(delay)

    def _judge_reply(self, model: str) -> str:
        mode = model.removeprefix("judge-")
        calls = self.received[f"/chat/completions {model}"]
        if mode == "malformed" or (mode == "flaky" and calls % 2 == 1):
            return "I think the cached answer is probably fine."
        score = 1.0 if mode == "flaky" else float(mode)
        return orjson.dumps({"score": score, "reason": "scripted"}).decode()

    @staticmethod
    def _fault(model: str, echo: str = "") -> Response | None:
        if model.startswith("error-"):
            status = int(model.removeprefix("error-"))
            return error_reply(status, f"simulated upstream error {status}", code=f"fake_{status}")
        if model.startswith("echo-"):
            status = int(model.removeprefix("echo-"))
            return error_reply(status, f"cannot process input: {echo}", code=f"fake_{status}")
        if model == "html":
            page = f"<html><body><h1>Gateway</h1><p>{echo}</p></body></html>"
            return Response(page, media_type="text/html")
        if model == "no-choices":
            return json_reply({"id": "fake", "object": "chat.completion", "output": echo})
        return None

    async def _body(self, request: Request) -> dict[str, Any] | Response:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return error_reply(400, "body is not valid JSON")
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return error_reply(400, "'model' is required", code="missing_model")
        self.received[f"{request.url.path.removeprefix('/v1')} {body['model']}"] += 1
        return body

    async def chat(self, request: Request) -> Response:
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        model: str = body["model"]
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return error_reply(400, "'messages' must be a non-empty array")
        await self._wait(model)
        fault = self._fault(model, make_answer(model, messages)) or self._transient(model, messages)
        if fault is not None:
            return fault
        text = self._judge_reply(model) if model.startswith("judge-") else None
        words = (text or make_answer(model, messages)).split(" ")
        finish = "stop"
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        if isinstance(max_tokens, int) and 0 < max_tokens < len(words):
            words, finish = words[:max_tokens], "length"
        prompt_tokens = sum(count_tokens(text_of(m.get("content"))) for m in messages)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(words),
            "total_tokens": prompt_tokens + len(words),
        }
        completion_id = "chatcmpl-fake" + hashlib.sha256(" ".join(words).encode()).hexdigest()[:20]
        message, reason = odd_answer(model, " ".join(words), finish)
        if body.get("stream") is True:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            stream = chat_stream(
                completion_id, model, message, reason, usage if include_usage else None
            )
            return StreamingResponse(self._counted(model, stream), media_type="text/event-stream")
        return json_reply(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [
                    {"index": 0, "message": message, "logprobs": None, "finish_reason": reason}
                ],
                "usage": usage,
            }
        )

    def _transient(self, model: str, messages: list[Any]) -> Response | None:
        """A ``flaky-<n>`` or ``retry-after-<s>`` model's failure for this call, if any."""
        if not model.startswith(("flaky-", "retry-after-")):
            return None
        key = (model, make_answer(model, messages))
        self.calls[key] += 1
        if model.startswith("flaky-") and self.calls[key] <= int(model.split("-")[1]):
            return error_reply(503, "simulated overload", code="fake_503")
        if model.startswith("retry-after-") and self.calls[key] == 1:
            response = error_reply(429, "simulated rate limit", code="fake_429")
            response.headers["retry-after"] = model.removeprefix("retry-after-")
            return response
        return None

    async def _counted(self, model: str, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """``stream``, counted as finished or aborted (see the module)."""
        try:
            async for data in stream:
                yield data
        except BaseException:
            self.received[f"stream aborted {model}"] += 1
            raise
        self.received[f"stream finished {model}"] += 1

    async def embeddings(self, request: Request) -> Response:
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        model: str = body["model"]
        raw = body.get("input")
        inputs = [raw] if isinstance(raw, str) else raw
        if not isinstance(inputs, list) or not inputs:
            return error_reply(400, "'input' must be a string or a non-empty array")
        await self._wait(model, simulated=self.embedder is None)
        fault = self._fault(model)
        if fault is not None:
            return fault
        vectors = await self._vectors(inputs, body.get("dimensions"))
        if isinstance(vectors, Response):
            return vectors
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, vector in enumerate(vectors):
            embedding: list[float] | str = vector
            if as_base64:
                embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(count_tokens(str(item)) for item in inputs)
        return json_reply(
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def _vectors(self, inputs: list[Any], dimensions: Any) -> list[list[float]] | Response:
        """One vector per input: hash-seeded, or the model's (texts only, its own dimension)."""
        if self.embedder is None:
            dims = int(dimensions or DEFAULT_DIMENSIONS)
            return [make_embedding(orjson.dumps(item).decode(), dims) for item in inputs]
        if not all(isinstance(item, str) for item in inputs):
            return error_reply(400, "this embedding model takes text input only")
        if dimensions is not None and dimensions != self.embedder.dimension:
            return error_reply(
                400, f"this embedding model has {self.embedder.dimension} dimensions"
            )
        # Concurrent embed() calls share the embedder's micro-batches, off the event loop.
        vectors = await asyncio.gather(*(self.embedder.embed(item) for item in inputs))
        return [vector.tolist() for vector in vectors]

    async def requests(self, _request: Request) -> Response:
        """Requests received so far, keyed ``"<route> <model>"``."""
        return json_reply(dict(self.received))

    async def models(self, _request: Request) -> Response:
        return json_reply(
            {
                "object": "list",
                "data": [{"id": "fake-gpt", "object": "model", "created": 0, "owned_by": "fake"}],
            }
        )


def create_fake_upstream(latency_ms: float = 0.0, embedder: Embedder | None = None) -> Starlette:
    """The simulator as an ASGI app; with ``embedder``, opened and closed in its lifespan,
    ``/v1/embeddings`` answers that model's vectors."""
    fake = FakeUpstream(latency_ms, embedder)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if embedder is None:
            yield
            return
        await embedder.open()
        try:
            yield
        finally:
            await embedder.close()

    return Starlette(
        lifespan=lifespan,
        routes=[
            Route("/v1/chat/completions", fake.chat, methods=["POST"]),
            Route("/chat/completions", fake.chat, methods=["POST"]),
            Route("/v1/embeddings", fake.embeddings, methods=["POST"]),
            Route("/embeddings", fake.embeddings, methods=["POST"]),
            Route("/v1/models", fake.models, methods=["GET"]),
            Route("/fake/requests", fake.requests, methods=["GET"]),
        ],
    )
