"""One pass of ``vetcache demo --learn``: a workload replayed through a gateway, every served
hit checked against the workload's own labels (``proxy.demo_labels``).

The fake upstream answers ``[model] reply <digest>: <prompt>``, so the body of a served hit
names the prompt its entry was cached for: a hit is false when the workload says that
prompt's answer does not serve the one asked (a trap served a question's answer, or the
reverse). Exact repeats make no similarity decision and are counted apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from proxy.demo import MODEL, replay_order, serve_app, settle
from proxy.demo_labels import Labels, Workload
from proxy.server import uvicorn_options
from proxy.settings import Settings

_ANSWER = re.compile(r"^\[[^\]]*\] reply [0-9a-f]+: (.*)$", re.S)


@dataclass
class Counts:
    """What one namespace saw in a pass."""

    requests: int = 0
    hits: int = 0
    exact: int = 0
    """Hits on the very text asked (no similarity decision)."""
    semantic: int = 0
    false: int = 0
    """Semantic hits the workload's labels say were wrong."""
    refused: dict[str, int] = field(default_factory=dict)
    """Misses by the policy's reason (``x-vetcache-refused``: verifier, contrast...)."""

    def add(self, other: Counts) -> None:
        self.requests += other.requests
        self.hits += other.hits
        self.exact += other.exact
        self.semantic += other.semantic
        self.false += other.false
        for reason, count in other.refused.items():
            self.refused[reason] = self.refused.get(reason, 0) + count

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.requests if self.requests else None

    @property
    def fp_share(self) -> float | None:
        """False semantic hits over served semantic hits (labels, not the judge)."""
        return self.false / self.semantic if self.semantic else None


@dataclass
class Tally:
    """A pass's counts by workload namespace, and the false hits (cached, asked)."""

    counts: dict[str, Counts] = field(default_factory=dict)
    false_hits: list[tuple[str, str]] = field(default_factory=list)

    def total(self) -> Counts:
        found = Counts()
        for counts in self.counts.values():
            found.add(counts)
        return found


def served_prompt(reply: httpx.Response) -> str | None:
    """The prompt the answer in ``reply`` was made for (the fake upstream's echo)."""
    try:
        content = reply.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    found = _ANSWER.match(content) if isinstance(content, str) else None
    return None if found is None else found.group(1)


def _count(
    tally: Tally, workload_ns: str, text: str, reply: httpx.Response, labels: Labels
) -> None:
    counts = tally.counts.setdefault(workload_ns, Counts())
    counts.requests += 1
    outcome = reply.headers.get("x-vetcache") if reply.status_code == 200 else "error"
    if outcome != "hit":
        reason = reply.headers.get("x-vetcache-refused")
        if reason:
            counts.refused[reason] = counts.refused.get(reason, 0) + 1
        return
    counts.hits += 1
    cached = served_prompt(reply)
    if cached == text:
        counts.exact += 1
        return
    counts.semantic += 1
    if cached is None or not labels.same_answer(cached, text):
        counts.false += 1
        tally.false_hits.append((cached or "?", text))


@contextlib.asynccontextmanager
async def gateway(settings: Settings) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """A gateway app with ``settings`` on its port, and a client for it, until the block
    ends (the fake upstream it calls runs apart, for every pass)."""
    from proxy.app import create_app

    app = create_app(settings)
    async with (
        serve_app(app, settings.port, **uvicorn_options(settings)),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.port}", timeout=60) as http,
    ):
        yield app, http


async def replay(
    app: Any,
    http: httpx.AsyncClient,
    groups: Workload,
    namespaces: dict[str, str],
    *,
    seed: int,
    concurrency: int,
) -> Tally:
    """Each question once, then (after the admissions landed) its paraphrases, the repeats
    and the traps shuffled; the gateway namespace of each workload namespace is
    ``namespaces[ns]``. Returns what was served, judged by the workload's labels."""
    labels = Labels.of(groups)
    first, second = replay_order(groups, seed)
    tally = Tally()
    gate = asyncio.Semaphore(concurrency)

    async def one(namespace: str, text: str) -> None:
        body = {"model": MODEL, "messages": [{"role": "user", "content": text}]}
        headers = {"x-vetcache-namespace": namespaces[namespace]}
        async with gate:
            reply = await http.post("/v1/chat/completions", json=body, headers=headers)
        _count(tally, namespace, text, reply, labels)

    await asyncio.gather(*(one(ns, text) for ns, text in first))
    await settle(app, time.monotonic() + 30)
    await asyncio.gather(*(one(ns, text) for ns, text in second))
    await settle(app, time.monotonic() + 60)
    return tally
