"""The fake upstream is the suite's real HTTP upstream; its own behaviour must hold."""

from __future__ import annotations

import asyncio
import base64
import math
import struct
import time

import orjson
import pytest
from starlette.testclient import TestClient

from cache.embedder import HashEmbedder
from proxy.fake_replies import make_answer
from proxy.fake_upstream import create_fake_upstream, make_embedding

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def fake() -> TestClient:
    return TestClient(create_fake_upstream())


def test_answers_are_deterministic_and_prompt_specific() -> None:
    assert make_answer("m", MESSAGES) == make_answer("m", MESSAGES)
    other = [{"role": "user", "content": "What is the capital of Spain?"}]
    assert make_answer("m", MESSAGES) != make_answer("m", other)
    assert make_answer("m", MESSAGES).endswith("What is the capital of France?")


def test_chat_json(fake: TestClient) -> None:
    answer = fake.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES}).json()
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"] == make_answer("m", MESSAGES)
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"]["total_tokens"] == sum(
        answer["usage"][k] for k in ("prompt_tokens", "completion_tokens")
    )


def test_max_tokens_truncates_with_length(fake: TestClient) -> None:
    body = {"model": "m", "messages": MESSAGES, "max_tokens": 2}
    choice = fake.post("/v1/chat/completions", json=body).json()["choices"][0]
    assert choice["finish_reason"] == "length"
    assert len(choice["message"]["content"].split()) == 2


def test_stream_is_openai_sse(fake: TestClient) -> None:
    body = {
        "model": "m",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    raw = fake.post("/v1/chat/completions", json=body).text
    events = [line.removeprefix("data: ") for line in raw.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert chunks[-1]["usage"]["completion_tokens"] > 0
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == make_answer("m", MESSAGES)


@pytest.mark.parametrize("status", [400, 429, 500, 503])
def test_error_models_answer_their_status(fake: TestClient, status: int) -> None:
    response = fake.post(
        "/v1/chat/completions", json={"model": f"error-{status}", "messages": MESSAGES}
    )
    assert response.status_code == status
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_embeddings_are_unit_vectors_in_both_encodings(fake: TestClient) -> None:
    floats = fake.post("/v1/embeddings", json={"model": "e", "input": ["a", "b"]}).json()
    vector = floats["data"][0]["embedding"]
    assert len(vector) == 384 and math.isclose(sum(v * v for v in vector), 1.0, rel_tol=1e-9)
    packed = fake.post(
        "/v1/embeddings", json={"model": "e", "input": ["a"], "encoding_format": "base64"}
    ).json()["data"][0]["embedding"]
    decoded = struct.unpack("<384f", base64.b64decode(packed))
    assert decoded == pytest.approx(vector, abs=1e-6)
    assert make_embedding('"a"', 8) == make_embedding('"a"', 8)


def test_with_an_embedder_its_vectors_are_served() -> None:
    embedder = HashEmbedder(384)  # the fake; tests/integration runs the real model
    with TestClient(create_fake_upstream(latency_ms=5000, embedder=embedder)) as fake:
        started = time.perf_counter()
        answer = fake.post("/v1/embeddings", json={"model": "e", "input": ["a", "b"]}).json()
        assert time.perf_counter() - started < 2.0  # no simulated latency on model vectors
        for item, text in zip(answer["data"], ("a", "b"), strict=True):
            expected = asyncio.run(embedder.embed(text)).tolist()
            assert item["embedding"] == pytest.approx(expected, abs=1e-6)
            assert item["embedding"] != make_embedding(f'"{text}"')
        tokens = fake.post("/v1/embeddings", json={"model": "e", "input": [[1, 2]]})
        assert tokens.status_code == 400
        other = {"model": "e", "input": "a", "dimensions": 8}
        assert fake.post("/v1/embeddings", json=other).status_code == 400


def test_tool_call_model_answers_a_tool_call(fake: TestClient) -> None:
    body = {"model": "tool-call", "messages": MESSAGES}
    answer = fake.post("/v1/chat/completions", json=body).json()["choices"][0]
    assert answer["finish_reason"] == "tool_calls"
    assert answer["message"]["tool_calls"][0]["function"]["name"] == "lookup"
    with fake.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as reply:
        chunks = [
            orjson.loads(line.removeprefix("data: "))
            for line in reply.iter_lines()
            if line.startswith("data: {")
        ]
    calls = [
        c["choices"][0]["delta"]["tool_calls"]
        for c in chunks
        if "tool_calls" in c["choices"][0]["delta"]
    ]
    call = answer["message"]["tool_calls"][0]
    assert calls[0] == [{"index": 0, **call, "function": {"name": "lookup", "arguments": ""}}]
    pieces = "".join(piece[0]["function"]["arguments"] for piece in calls[1:])
    assert pieces == call["function"]["arguments"]


def test_responses_json_and_stream(fake: TestClient) -> None:
    body = {"model": "m", "input": "What is the capital of France?", "previous_response_id": "r1"}
    response = fake.post("/v1/responses", json=body).json()
    assert response["object"] == "response"
    assert response["previous_response_id"] == "r1"
    text = response["output"][0]["content"][0]["text"]
    assert text == make_answer("m", MESSAGES)
    with fake.stream("POST", "/v1/responses", json={**body, "stream": True}) as reply:
        events = [
            orjson.loads(line.removeprefix("data: "))
            for line in reply.iter_lines()
            if line.startswith("data: ")
        ]
    assert events[0]["type"] == "response.created"
    assert events[-1]["type"] == "response.completed"
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == text
    assert fake.get("/fake/requests").json()["/responses m"] == 2


def test_responses_faults(fake: TestClient) -> None:
    reply = fake.post("/v1/responses", json={"model": "error-429", "input": "hi"})
    assert reply.status_code == 429
    assert fake.post("/v1/responses", json={"model": "m"}).status_code == 400
