"""What translating Anthropic's Messages format costs ``/v1/messages``, in CPU per request.

In-process, no server: the request to a chat body (``to_chat``), a chat completion to an
Anthropic message (``to_message``), and an answer of ``--chunks`` chat chunks to Anthropic's
events, written as the route writes them: by ``proxy.messages_stream``, by litellm's
``AnthropicStreamWrapper`` (what it replaced), and the chat route's own ``data:`` events for
scale. CPU time (``process_time``), best of ``--rounds``. A benchmark: numbers only.

    .venv/bin/python tests/bench/messages_wire.py [--chunks 500] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from audit.llm_client import import_litellm
from proxy.messages_wire import frame, to_chat, to_events, to_message
from proxy.routes.chat import sse

BASE = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
REQUEST = {
    "model": "m",
    "max_tokens": 512,
    "system": "Answer briefly.",
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
}


def chunks_of(count: int) -> list[dict[str, Any]]:
    """A streamed answer of ``count`` one-word chunks, its finish and usage chunks."""
    usage = {"prompt_tokens": 9, "completion_tokens": count, "total_tokens": 9 + count}
    first = {"role": "assistant", "content": ""}
    return [
        {**BASE, "choices": [{"index": 0, "delta": first, "finish_reason": None}]},
        *[
            {
                **BASE,
                "choices": [{"index": 0, "delta": {"content": " word"}, "finish_reason": None}],
            }
            for _ in range(count)
        ],
        {**BASE, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**BASE, "choices": [], "usage": usage},
    ]


async def _source(chunks: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for chunk in chunks:
        yield chunk


async def ours(chunks: list[dict[str, Any]]) -> None:
    async for event in to_events(_source(chunks), "m", {}):
        frame(event)


async def litellms(chunks: list[dict[str, Any]]) -> None:
    from litellm.llms.anthropic.messages.adapters.streaming_iterator import (
        AnthropicStreamWrapper,
    )
    from litellm.types.utils import ModelResponseStream

    async def objects() -> AsyncIterator[ModelResponseStream]:
        for chunk in chunks:
            yield ModelResponseStream(**chunk)

    async for event in AnthropicStreamWrapper(objects(), model="m").async_anthropic_sse_wrapper():  # type: ignore[arg-type]
        del event


async def chat_events(chunks: list[dict[str, Any]]) -> None:
    async for event in sse(_source(chunks), "bench"):
        del event


def _run(writer: Callable[[list[dict[str, Any]]], Awaitable[None]], chunks: list[Any]) -> None:
    asyncio.run(writer(chunks))  # type: ignore[arg-type]


def best(rounds: int, work: Callable[[], Any]) -> float:
    """The least CPU seconds ``work()`` took in ``rounds`` runs (after one warm-up)."""
    work()
    times = []
    for _ in range(rounds):
        started = time.process_time()
        work()
        times.append(time.process_time() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import_litellm()
    completion = orjson.dumps(
        {
            "id": "c", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": " word" * args.chunks}}],
            "usage": {"prompt_tokens": 9, "completion_tokens": args.chunks, "total_tokens": 9},
        }
    )  # fmt: skip
    loops = 200
    per_call = best(args.rounds, lambda: [to_chat(REQUEST) for _ in range(loops)]) / loops
    print(f"to_chat     {per_call * 1e6:8.1f} us per request")
    per_call = best(args.rounds, lambda: [to_message(completion, "m", {}) for _ in range(loops)])
    print(f"to_message  {per_call / loops * 1e6:8.1f} us per answer")
    chunks = chunks_of(args.chunks)
    writers: list[tuple[str, Callable[[list[dict[str, Any]]], Awaitable[None]]]] = [
        ("ours", ours),
        ("litellm", litellms),
        ("chat sse", chat_events),
    ]
    for name, writer in writers:
        spent = best(args.rounds, functools.partial(_run, writer, chunks))
        print(
            f"{name:<10} {spent * 1e3:8.2f} ms per {args.chunks}-chunk stream, "
            f"{spent / len(chunks) * 1e6:6.2f} us per chunk"
        )


if __name__ == "__main__":
    main()
