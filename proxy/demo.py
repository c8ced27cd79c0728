"""``vetcache demo``: the whole product on one machine, no services, in about a minute.

Starts the fake upstream and the gateway (embedded store, bundled embedding model, the
in-process audit worker with the ``contrast`` judge) on loopback ports, replays a workload
written for this demo (``proxy/demo/workload.json``: questions, paraphrases that should hit,
exact repeats, and traps — negations, other numbers, swapped places — that look alike but
need another answer) over HTTP, waits for the audits, asks the false hits again, and prints
what happened: hit rate and FP rate with its interval by namespace, latency, what the
judge caught, and what ``vetcache tune`` recommends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import socket
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from audit import Auditor
from audit.stats import fp_rate
from proxy.demo_labels import load_workload
from proxy.server import uvicorn_options
from proxy.settings import Settings

MODEL = "fake-gpt"
Requests = list[tuple[str, str]]
"""(namespace, prompt) pairs to send."""


@dataclass
class Replay:
    """What the client saw."""

    outcomes: dict[str, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports: all sockets are held until every port is
    known (one released before the next is asked for can be handed out again, which once
    put the gateway and the fake upstream on one port)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


@contextlib.asynccontextmanager
async def serve_app(app: Any, port: int, **options: Any) -> AsyncIterator[None]:
    """``app`` on 127.0.0.1:``port`` in this event loop until the block ends."""
    import uvicorn

    options = {"access_log": False, "log_config": None, **options}
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", **options)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # raises what stopped it
                raise RuntimeError(f"could not serve on 127.0.0.1:{port}")
            await asyncio.sleep(0.05)
        yield
    finally:
        server.should_exit = True
        await task


def demo_settings(
    upstream_port: int,
    gateway_port: int,
    threshold: float,
    verifier: dict[str, Any] | None = None,
    *,
    audits: bool = True,
    admin_key: str | None = None,
) -> Settings:
    """The demo gateway's settings (``verifier``: ``cache.verifier``, none by default;
    ``audits``: the contrast judge audits every hit and near-miss; ``admin_key``: the admin
    routes' key, none: they are off)."""
    cache: dict[str, Any] = {"threshold": threshold, "lookup_budget_ms": 2000}
    if verifier is not None:
        cache["verifier"] = verifier
    return Settings.model_validate(
        {
            "port": gateway_port,
            "auth": {"enabled": False},
            "admin_key": admin_key,
            "access_log": False,
            "log_level": "warning",
            "cache": cache,
            "audit": {
                "enabled": audits,
                "sample_rate": 1.0,
                "near_miss_rate": 1.0,
                "judge": "contrast",
            },
            "metrics": {"refresh_s": 1.0},
            "model_list": [
                {
                    "model_name": MODEL,
                    "model": "openai/fake-gpt",
                    "api_base": f"http://127.0.0.1:{upstream_port}/v1",
                }
            ],
        }
    )


async def _ask(
    http: httpx.AsyncClient, namespace: str, text: str, replay: Replay
) -> httpx.Response:
    body = {"model": MODEL, "messages": [{"role": "user", "content": text}]}
    started = time.perf_counter()
    reply = await http.post(
        "/v1/chat/completions", json=body, headers={"x-vetcache-namespace": namespace}
    )
    elapsed = time.perf_counter() - started
    outcome = reply.headers.get("x-vetcache", "error") if reply.status_code == 200 else "error"
    replay.outcomes[namespace][outcome] += 1
    replay.latency[outcome].append(elapsed)
    return reply


async def _replay(
    http: httpx.AsyncClient,
    requests: list[tuple[str, str]],
    replay: Replay,
    concurrency: int,
    progress: Any,
) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(namespace: str, text: str) -> None:
        async with gate:
            await _ask(http, namespace, text, replay)
        progress.update(1)

    await asyncio.gather(*(one(ns, text) for ns, text in requests))


async def settle(app: Any, until: float) -> None:
    """Wait for admissions and audits (if any) to land (or ``until``)."""
    service = app.state.chat
    auditor = app.state.auditor
    while time.monotonic() < until:
        await service.drain()
        if auditor is None:
            return
        if await auditor.queue_depth() == 0:
            await asyncio.sleep(0.3)  # the job being judged
            if await auditor.queue_depth() == 0:
                return
        await asyncio.sleep(0.1)


def replay_order(groups: dict[str, list[dict[str, Any]]], seed: int) -> tuple[Requests, Requests]:
    """The first round (each question once) and the second (paraphrases, repeats and traps
    shuffled)."""
    rng = random.Random(seed)  # noqa: S311 - shuffles a replay, not security
    first = [(ns, g["ask"]) for ns, items in groups.items() for g in items]
    second = [
        (ns, text)
        for ns, items in groups.items()
        for g in items
        for text in [*g["same"], g["ask"], *g["traps"]]
    ]
    rng.shuffle(second)
    return first, second


def quiet() -> None:
    """The demo's own output is the report: keep library chatter (the model-loading progress
    bar, litellm's lines) out of it."""
    import logging

    from transformers.utils import logging as transformers_logging

    logging.getLogger("LiteLLM").setLevel(logging.ERROR)
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


async def run_demo(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from proxy.app import create_app
    from proxy.fake_upstream import create_fake_upstream

    quiet()
    started = time.monotonic()
    groups = load_workload()
    first, second = replay_order(groups, args.seed)
    upstream_port, gateway_port = free_ports(2)
    settings = demo_settings(upstream_port, gateway_port, args.threshold)
    app = create_app(settings)
    replay = Replay()
    print(
        f"vetcache demo: gateway on 127.0.0.1:{gateway_port} (embedded store, bundled "
        f"embedder, contrast judge auditing every hit, threshold {args.threshold}), fake "
        f"upstream on 127.0.0.1:{upstream_port}; loading the embedding model...",
        file=sys.stderr,
    )
    async with (
        serve_app(create_fake_upstream(), upstream_port),
        serve_app(app, gateway_port, **uvicorn_options(settings)),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway_port}", timeout=60) as http,
    ):
        total = len(first) + len(second)
        with tqdm(
            total=total, desc="replaying", unit="req", disable=args.no_progress, file=sys.stderr
        ) as progress:
            await _replay(http, first, replay, args.concurrency, progress)
            await settle(app, time.monotonic() + 30)
            await _replay(http, second, replay, args.concurrency, progress)
            await settle(app, time.monotonic() + 60)
        summary_text = await _audited(app.state.auditor, http, groups, replay, args)
    print(summary_text)
    print(f"(finished in {time.monotonic() - started:.0f} s)", file=sys.stderr)
    return 0


async def _audited(
    auditor: Auditor,
    http: httpx.AsyncClient,
    groups: dict[str, list[dict[str, Any]]],
    replay: Replay,
    args: argparse.Namespace,
) -> str:
    """The report: the verdicts, the false hits asked again, what tune recommends."""
    verdicts = await auditor.verdicts(limit=None)
    false_hits = [v for v in verdicts if v.verdict == "false_positive" and not v.job.near_miss]
    again = Replay()
    for verdict in false_hits:
        reply = await _ask(http, verdict.job.namespace, verdict.job.new_prompt, again)
        if reply.headers.get("x-vetcache-entry") == verdict.job.entry_id:
            again.outcomes[verdict.job.namespace]["same_entry"] += 1
    tunes = {
        ns: await auditor.tune(ns, args.target_fp, hours=168, current=args.threshold)
        for ns in groups
    }
    return _report(groups, replay, verdicts, false_hits, again, tunes)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _ms(values: list[float], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))
    return f"{1000 * ordered[index]:.1f} ms"


def _outcomes(replay: Replay, namespace: str | None) -> dict[str, int]:
    """Outcomes counted for ``namespace`` (None: all of them)."""
    if namespace is not None:
        return dict(replay.outcomes[namespace])
    total: dict[str, int] = {}
    for seen in replay.outcomes.values():
        for outcome, count in seen.items():
            total[outcome] = total.get(outcome, 0) + count
    return total


def _report(
    groups: dict[str, list[dict[str, Any]]],
    replay: Replay,
    verdicts: list[Any],
    false_hits: list[Any],
    again: Replay,
    tunes: dict[str, Any],
) -> str:
    lines = ["", "Namespace   requests  hits  hit rate  judged  false hits  FP rate  95% interval"]
    names = [*groups, "all"]
    for ns in names:
        seen = _outcomes(replay, None if ns == "all" else ns)
        requests, hits = sum(seen.values()), seen.get("hit", 0)
        mine = [v for v in verdicts if ns == "all" or v.job.namespace == ns]
        rate, exact = fp_rate(mine), fp_rate(mine, exact=True)
        shown = "" if ns == "all" else _pct(hits / requests if requests else None)
        lines.append(
            f"{ns:<11} {requests:>8} {hits:>5} {shown:>9}"
            f" {rate.labelled + exact.labelled:>7}"
            f" {rate.false_positives + exact.false_positives:>11} {_pct(rate.rate):>8}"
            f"  {_pct(rate.lower)}-{_pct(rate.upper)}"
        )
    repeats = fp_rate(verdicts, exact=True).labelled
    lines.append(
        f"(judged: every hit; FP rate: semantic hits only. {repeats} judged hits were exact "
        "repeats, which make no similarity decision.)"
    )
    lines += ["", "Latency (client side, 4 in flight)  p50       p99"]
    for outcome in ("hit", "miss"):
        values = replay.latency.get(outcome, [])
        lines.append(f"  {outcome:<32} {_ms(values, 0.5):>9}  {_ms(values, 0.99):>9}")
    if false_hits:
        lines += ["", f"The judge caught {len(false_hits)} false hits, for example:"]
        for verdict in sorted(false_hits, key=lambda v: -v.job.similarity)[:4]:
            job = verdict.job
            lines.append(
                f'  "{job.new_prompt}" was served the answer to "{job.cached_prompt}" '
                f"(similarity {job.similarity:.3f}; {verdict.reason})"
            )
        asked = _outcomes(again, None)
        lines.append(
            f"Asked again after the verdicts, {len(false_hits) - asked.get('same_entry', 0)} of "
            f"{len(false_hits)} are no longer served the entry judged wrong for them: each "
            "false hit is now a false label beside that entry, and a prompt nearer to it than to "
            "the entry is refused (its neighbourhood). "
            f"{asked.get('miss', 0)} now miss; {asked.get('hit', 0)} are served the next "
            "nearest entry the policy accepts (cache.search_k), which the audits judge in turn."
        )
    lines += ["", f"vetcache tune (target FP {next(iter(tunes.values())).target_fp:g}):"]
    for ns, report in tunes.items():
        pick = "none" if report.recommended is None else f"{report.recommended:.2f}"
        lines.append(f"  {ns}: recommended threshold {pick} ({report.reason})")
    lines.append(
        "Similarity alone cannot keep these traps out at any threshold that still serves "
        "paraphrases: that is why vetcache audits its hits."
    )
    return "\n".join(lines)
