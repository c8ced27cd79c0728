"""Reading request bodies: where the work on a large one runs, and in what order the limits
apply (``proxy.wire``)."""

from __future__ import annotations

import threading
from typing import Any

import orjson
import pytest
from starlette.requests import Request
from starlette.types import Message

from proxy.errors import InvalidRequest
from proxy.schemas import MAX_MESSAGES, ChatCompletionRequest, chat_limits
from proxy.wire import MAX_JSON_DEPTH, OFF_LOOP_BYTES, _depth, decode, read_valid


def request_with(body: bytes) -> Request:
    """A request carrying ``body`` in 64 KiB chunks, as a server hands it over."""
    chunks = [body[start : start + 65536] for start in range(0, len(body), 65536)]

    async def receive() -> Message:
        chunk = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    headers = [(b"content-type", b"application/json")]
    return Request({"type": "http", "method": "POST", "headers": headers}, receive)


def chat(content: str, count: int = 1) -> bytes:
    messages = [{"role": "user", "content": content}] * count
    return orjson.dumps({"model": "m", "messages": messages})


async def test_a_large_body_is_decoded_off_the_event_loop_and_a_small_one_on_it() -> None:
    threads: list[int] = []

    def limits(body: dict[str, Any]) -> None:
        threads.append(threading.get_ident())
        chat_limits(body)

    small, large = chat("hi"), chat("x" * OFF_LOOP_BYTES)
    for body in (small, large):
        data, model = await read_valid(request_with(body), ChatCompletionRequest, 1 << 22, limits)
        assert data == orjson.loads(body) and model.messages[0].role == "user"
    assert threads[0] == threading.get_ident()
    assert threads[1] != threading.get_ident()


async def test_a_refusal_in_the_worker_thread_reaches_the_route() -> None:
    body = chat("hi", MAX_MESSAGES + 1)
    assert len(body) > OFF_LOOP_BYTES
    with pytest.raises(InvalidRequest) as refused:
        await read_valid(request_with(body), ChatCompletionRequest, 1 << 22, chat_limits)
    assert (refused.value.code, refused.value.param) == ("too_many_messages", "messages")
    assert refused.value.__context__ is None  # nothing left holding the parsed body


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("{}", 1),
        ('{"a": [[{"b": []}]]}', 5),
        ('{"a": "[[[{{{", "b": ["]]]"]}', 2),
        ('{"a": "\\"[[[", "b": "\\\\", "c": [["\\\\\\"]"]]}', 3),
        ('{"a": "x", "b": "y", "c": ["[", "]", "{"]}', 2),
        ('{"\\\\": [1], "[": {"]": ["\\\\\\\\\\""]}}', 3),
    ],
)
def test_nesting_is_measured_on_the_bytes_as_the_parser_sees_it(text: str, depth: int) -> None:
    """Brackets inside strings (escaped quotes and backslashes included) do not count."""
    data = orjson.loads(text)  # valid JSON, as written
    assert data is not None
    assert _depth(text.encode()) == depth


def test_a_body_one_level_too_deep_is_refused_before_parsing() -> None:
    inner: Any = []
    for _ in range(MAX_JSON_DEPTH - 2):
        inner = [inner]
    assert decode(orjson.dumps({"a": inner})) == {"a": inner}  # the object, then 63 levels
    with pytest.raises(InvalidRequest, match="deeper"):
        decode(orjson.dumps({"a": [inner]}))
