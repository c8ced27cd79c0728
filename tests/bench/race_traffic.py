"""The race's workload and driver: questions and paraphrases from the fow_cache same-answer
pairs, sent to both gateways (and straight to the upstream) in turns, as misses, as hits at
several concurrencies, and as paraphrases."""

from __future__ import annotations

import argparse
import asyncio
import csv
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp

from tests.conftest import ROOT

PAIRS = ROOT.parent / "shared" / "data" / "fow_cache" / "pairs.tsv"
LEVELS = (1, 8, 32)


@dataclass
class Target:
    name: str
    url: str
    model: str
    headers: dict[str, str]
    is_hit: Callable[[Mapping[str, str]], bool]
    no_store: Callable[[dict[str, Any], dict[str, str]], None] = lambda body, headers: None


@dataclass
class Cell:
    """One run of requests against one target."""

    latencies: list[float] = field(default_factory=list)
    hit_latencies: list[float] = field(default_factory=list)
    outcomes: list[bool] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, latency: float, hit: bool) -> None:
        self.latencies.append(latency)
        self.outcomes.append(hit)
        if hit:
            self.hit_latencies.append(latency)

    def summary(self) -> dict[str, float]:
        hits = self.hit_latencies
        return {
            "p50": pct(hits, 0.5), "p99": pct(hits, 0.99),
            "hits_per_s": len(hits) / self.seconds if self.seconds else 0.0,
            "hit_ratio": len(hits) / len(self.outcomes) if self.outcomes else 0.0,
        }  # fmt: skip


def pct(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def ask(
    client: aiohttp.ClientSession, target: Target, prompt: str, store: bool
) -> tuple[float, bool]:
    body: dict[str, Any] = {
        "model": target.model,
        "messages": [{"role": "user", "content": prompt}],
    }
    headers = dict(target.headers)
    if not store:
        target.no_store(body, headers)
    started = time.perf_counter()
    try:
        url = f"{target.url}/chat/completions"
        async with client.post(url, json=body, headers=headers) as reply:
            text = await reply.read()
    except aiohttp.ClientError as exc:
        raise RuntimeError(f"{target.name}: {exc!r}") from exc
    latency = (time.perf_counter() - started) * 1000
    if reply.status != 200:
        raise RuntimeError(f"{target.name}: {reply.status} {text[:300]!r}")
    return latency, target.is_hit(reply.headers)


async def drive(
    client: aiohttp.ClientSession, target: Target, prompts: list[str], concurrency: int
) -> Cell:
    """Each prompt once, by ``concurrency`` workers; misses are not admitted (no-store)."""
    cell, pending = Cell(), iter(prompts)

    async def worker() -> None:
        for prompt in pending:  # shared: each prompt is taken by one worker
            cell.add(*await ask(client, target, prompt, store=False))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cell.seconds = time.perf_counter() - started
    return cell


async def misses(
    client: aiohttp.ClientSession, gateways: list[Target], direct: Target, questions: list[str]
) -> dict[str, dict[str, Any]]:
    """Each question once to each gateway (a first ask: a miss, admitted) and to the upstream
    directly, in rotating order; overhead = gateway minus direct, over the real misses."""
    found: dict[str, dict[str, Any]] = {
        t.name: {"latency": [], "overhead": [], "hit_instead": 0} for t in gateways
    }
    direct_latency: list[float] = []
    for number, question in enumerate(questions):
        order = [*gateways, direct]
        order = order[number % 3 :] + order[: number % 3]
        results = {t.name: await ask(client, t, question, store=True) for t in order}
        base = results[direct.name][0]
        direct_latency.append(base)
        for target in gateways:
            latency, hit = results[target.name]
            found[target.name]["latency"].append(latency)
            if hit:  # close enough to an earlier question: not a miss
                found[target.name]["hit_instead"] += 1
            else:
                found[target.name]["overhead"].append(latency - base)
    found["direct"] = {"latency": direct_latency}
    return found


async def hits(
    client: aiohttp.ClientSession,
    gateways: list[Target],
    kinds: dict[str, list[str]],
    requests: int,
) -> dict[str, dict[str, Any]]:
    """Every kind at every concurrency, the gateways taking turns at going first."""
    cells: dict[str, dict[str, Any]] = {}
    for number, (level, kind) in enumerate((lv, k) for lv in LEVELS for k in kinds):
        prompts = [kinds[kind][i % len(kinds[kind])] for i in range(requests)]
        for target in gateways if number % 2 == 0 else gateways[::-1]:
            await drive(client, target, prompts[: 4 * level], level)  # warm-up
            cell = await drive(client, target, prompts, level)
            cells[f"{kind} c={level} {target.name}"] = {**cell.summary(), **asdict(cell)}
        print(f"  {kind} c={level} done", flush=True)
    return cells


async def paraphrases(
    client: aiohttp.ClientSession, gateways: list[Target], texts: list[str]
) -> dict[str, Any]:
    outcomes = {t.name: (await drive(client, t, texts, 1)).outcomes for t in gateways}
    first, second = (outcomes[t.name] for t in gateways)
    return {
        **{name: sum(hit) / len(hit) for name, hit in outcomes.items()},
        "disagree": sum(a != b for a, b in zip(first, second, strict=True)),
    }


def variant(text: str) -> str:
    return text.lower().rstrip("?.!")


def workload(count: int) -> list[tuple[str, str]]:
    """(question, paraphrase) from the fow_cache same-answer pairs, distinct questions whose
    variant differs from them (else the "semantic" hit would be an exact one)."""
    with PAIRS.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle, delimiter="\t") if row["label"] == "1"]
    seen: dict[str, str] = {}
    for row in rows:
        question = row["text_a"].strip()
        if question not in seen and variant(question) != question:
            seen[question] = row["text_b"].strip()
    return list(seen.items())[:count]


async def counted(client: aiohttp.ClientSession, url: str) -> dict[str, int]:
    async with client.get(url) as reply:
        counts: dict[str, int] = await reply.json()
    return counts


async def race(urls: dict[str, str], key: str, args: argparse.Namespace) -> dict[str, Any]:
    auth = {"authorization": f"Bearer {key}"}
    gateways = [
        Target("vetcache", urls["vetcache"], "fake-gpt", auth,
               lambda headers: headers.get("x-vetcache") == "hit",
               lambda body, headers: headers.update({"cache-control": "no-store"})),
        Target("LiteLLM", urls["litellm"], "fake-gpt", auth,
               lambda headers: bool(headers.get("x-litellm-cache-key")),
               lambda body, headers: body.update({"cache": {"no-store": True}})),
    ]  # fmt: skip
    direct = Target("direct", urls["upstream"], "race-direct", {}, lambda headers: False)
    pairs = workload(args.questions)
    questions = [question for question, _ in pairs]
    # aiohttp, not httpx: at c=32 httpx's pool capped this client at ~200 requests/s here,
    # aiohttp at ~1000/s, so the client would have been the bottleneck of the fast side.
    # Idle connections are dropped after 2 s, before uvicorn's 5 s keep-alive closes them from
    # its side (reusing one just as the server closes it fails with "Server disconnected").
    connector = aiohttp.TCPConnector(limit=128, keepalive_timeout=2)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:
        counts = urls["upstream"].removesuffix("/v1") + "/fake/requests"
        warm = [f"Warm-up {i}: how many legs does a {animal} have?" for i, animal in
                enumerate(["spider", "horse", "snail", "crab", "duck", "bee"])]  # fmt: skip
        await misses(client, gateways, direct, warm)
        await asyncio.sleep(1.0)  # both admit after answering
        before = await counted(client, counts)
        print(f"misses: {len(questions)} questions x (vetcache, LiteLLM, direct)", flush=True)
        found = await misses(client, gateways, direct, questions)
        await asyncio.sleep(1.0)
        after_misses = await counted(client, counts)
        kinds = {"semantic": [variant(q) for q in questions], "exact": questions}
        cells = await hits(client, gateways, kinds, args.requests)
        para = await paraphrases(client, gateways, [p for _, p in pairs])
        after = await counted(client, counts)
    return {
        "config": {**vars(args), "onnx_dir": str(args.onnx_dir), "json": str(args.json),
                   "questions_used": len(questions)},
        "misses": found, "hits": cells, "paraphrases": para,
        "upstream_requests": {"before": before, "after_misses": after_misses, "after": after},
    }  # fmt: skip
