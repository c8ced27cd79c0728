"""Requests as the client saw them: one at a time, until a hit, or a few clients asking in
the background; and the counters of the fake upstream and the gateway they move."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import orjson

from proxy.fake_replies import make_answer
from tests.integration.faults.rig import Gateway

QUESTIONS = [f"Question {i}: how do I sort a list of {i + 2} numbers?" for i in range(8)]


@dataclass(frozen=True)
class Reply:
    """One request as the client saw it."""

    question: str
    model: str
    status: int
    cache: str
    """``x-vetcache`` (empty when the response has none)."""
    request_id: str
    started: float
    ended: float
    content: str | None
    """The answer's text (a stream's, joined), None when the answer was not complete."""
    error_code: str | None = None

    @property
    def seconds(self) -> float:
        return self.ended - self.started


def messages(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


def expected(question: str, upstream_model: str = "fake-gpt") -> str:
    """What the fake upstream answers (and so what a hit must replay)."""
    return make_answer(upstream_model, messages(question))


async def ask(
    http: httpx.AsyncClient, namespace: str, question: str, model: str = "fake-gpt",
    stream: bool = False,
) -> Reply:  # fmt: skip
    body = {"model": model, "messages": messages(question), "stream": stream}
    started = time.monotonic()
    response = await http.post(
        "/v1/chat/completions", json=body, headers={"x-vetcache-namespace": namespace}
    )
    content, code = None, None
    if response.status_code != 200:
        code = response.json()["error"]["code"]
    elif stream:
        content, code = _streamed(response.text)
    else:
        content = response.json()["choices"][0]["message"]["content"]
    return Reply(
        question=question, model=model, status=response.status_code,
        cache=response.headers.get("x-vetcache", ""),
        request_id=response.headers["x-request-id"], started=started, ended=time.monotonic(),
        content=content, error_code=code,
    )  # fmt: skip


def _streamed(text: str) -> tuple[str | None, str | None]:
    """A stream's text if it ended with ``[DONE]``, else the error event's code."""
    events = [e.removeprefix("data: ") for e in text.split("\n\n") if e]
    if events and events[-1] == "[DONE]":
        chunks = [orjson.loads(e) for e in events[:-1]]
        parts = [c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]]
        return "".join(parts), None
    return None, orjson.loads(events[-1])["error"]["code"]


async def load(
    url: str, namespace: str, done: asyncio.Event, replies: list[Reply], clients: int = 4,
    limit: int = 400,
) -> None:  # fmt: skip
    """``clients`` clients asking ``QUESTIONS`` in turn until ``done`` is set (at most
    ``limit`` requests each); ``replies`` grows as they are answered."""

    async def client(i: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            for n in range(limit):
                if done.is_set():
                    return
                question = QUESTIONS[(i + n * clients) % len(QUESTIONS)]
                replies.append(await ask(http, namespace, question))
                await asyncio.sleep(0.02)

    await asyncio.gather(*(client(i) for i in range(clients)))


@asynccontextmanager
async def under_load(gw: Gateway) -> AsyncIterator[list[Reply]]:
    """Four clients asking in the background while the block runs; their replies so far."""
    done, replies = asyncio.Event(), list[Reply]()
    running = asyncio.create_task(load(gw.url, gw.namespace, done, replies))
    try:
        yield replies
    finally:
        done.set()
        await running


async def until_hit(url: str, namespace: str, question: str, within_s: float = 30) -> Reply:
    """Ask ``question`` until the cache answers it."""
    deadline = time.monotonic() + within_s
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        while True:
            reply = await ask(http, namespace, question)
            assert reply.status == 200, reply
            if reply.cache == "hit":
                return reply
            assert time.monotonic() < deadline, f"no hit within {within_s}s: {reply}"
            await asyncio.sleep(0.1)


def summary(replies: list[Reply]) -> str:
    return (
        f"{len(replies)} requests, status {dict(Counter(r.status for r in replies))}, "
        f"x-vetcache {dict(Counter(r.cache for r in replies))}"
    )


def hits(replies: list[Reply]) -> set[str]:
    return {r.request_id for r in replies if r.cache == "hit"}


def during(replies: list[Reply], start: float, end: float) -> list[Reply]:
    """The replies to requests sent after ``start`` and answered before ``end``."""
    return [r for r in replies if r.started > start and r.ended < end]


async def upstream_calls(fake_upstream: str, model: str) -> int:
    """How many chat requests for ``model`` the fake upstream has answered."""
    async with httpx.AsyncClient(timeout=10) as http:
        counts = (await http.get(fake_upstream.removesuffix("/v1") + "/fake/requests")).json()
    return int(counts.get(f"/chat/completions {model}", 0))


async def jobs_queued(url: str) -> float:
    """``vetcache_audit_jobs_total`` of a gateway, summed over its labels."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        page = (await http.get("/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in page.splitlines()
        if line.startswith("vetcache_audit_jobs_total{")
    )
