"""Race: vetcache against the LiteLLM proxy's redis-semantic cache, side by side, same run.

Starts Redis Stack (``scripts/redis-stack.sh``), the fake upstream with a fixed latency that
also serves the bundled model's real vectors on ``/v1/embeddings`` (``--embeddings model``,
the backend vetcache runs), ``vetcache serve`` and the LiteLLM proxy (``litellm[proxy]`` at
the version in .venv, from a venv of its own made once under ``.cache/bench``: its
dependencies must not move the project's pins). Both caches live in the same Redis at the
same threshold, each in its own index. Then, on both, alternating so both see the same
machine:

- misses: N distinct questions (fow_cache same-answer pairs' ``text_a``), each also sent
  straight to the upstream; miss overhead = gateway latency minus direct latency, p50/p99;
- hits at concurrency 1, 8 and 32: a lower-cased, unpunctuated variant of each question
  (semantic) and the question itself (exact), p50/p99 of the hits, hits/s, hit ratio (from
  ``x-vetcache: hit`` and LiteLLM's ``x-litellm-cache-key``, set on cache hits only);
- the fow_cache paraphrases (``text_b``) once each: hit ratio, and where the two disagree.

Prints metric / vetcache / LiteLLM / ratio and whether the acceptance conditions of issue 9
hold; ``--json`` writes the raw numbers. Numbers only; nothing is asserted.

    .venv/bin/python tests/bench/race.py [--questions 200] [--requests 500] [--latency-ms 50]
        [--threshold 0.85] [--backend onnx-int8] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import importlib.metadata
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from packaging.requirements import Requirement

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cache.semantic import EMBEDDING_BACKENDS
from tests.conftest import LOGS, ROOT, free_port, stop, vetcache, wait_http

VENV = ROOT / ".cache" / "bench" / "litellm-proxy-venv"
PAIRS = ROOT.parent / "shared" / "data" / "fow_cache" / "pairs.tsv"
LEVELS = (1, 8, 32)
TAKEN_PORTS = {6399, 6411}  # other runs' Redis servers on this machine


# -- the LiteLLM proxy's own venv ------------------------------------------------------------


def proxy_requirements() -> list[str]:
    """``litellm[proxy]`` spelled out from the installed litellm's metadata, for when the extra
    as published cannot install: it pins ``litellm-proxy``, a package this index does not
    have (the proxy's code ships inside the litellm wheel, ``litellm/proxy``), and companions
    newer than the index has (taken at the newest it has)."""
    version = importlib.metadata.version("litellm")
    wanted = [f"litellm=={version}"]
    for line in importlib.metadata.requires("litellm") or []:
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is None or not marker.evaluate({"extra": "proxy"}):
            continue
        if marker.evaluate({"extra": ""}) or requirement.name == "litellm-proxy":
            continue
        companion = requirement.name in ("litellm-proxy-extras", "litellm-enterprise")
        wanted.append(
            requirement.name if companion else f"{requirement.name}{requirement.specifier}"
        )
    return wanted


def litellm_proxy() -> Path:
    """The ``litellm`` command of the bench's venv, made (once) at .venv's litellm version;
    ``redisvl`` is what its redis-semantic cache runs on."""
    version = importlib.metadata.version("litellm")
    marker = VENV / f".installed-{version}"
    if marker.exists():
        return VENV / "bin" / "litellm"
    print(f"making {VENV} with litellm[proxy]=={version} (once)...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    published = subprocess.run(
        [*pip, f"litellm[proxy]=={version}", "redisvl"], capture_output=True, text=True
    )
    if published.returncode != 0:
        errors = [line for line in published.stderr.splitlines() if line.startswith("ERROR")]
        print(f"litellm[proxy]=={version} does not install: {errors[-1:]}; spelling it out")
        spelled = subprocess.run(
            [*pip, *proxy_requirements(), "redisvl"], capture_output=True, text=True
        )
        if spelled.returncode != 0:
            raise SystemExit(f"cannot install the LiteLLM proxy:\n{spelled.stderr[-3000:]}")
    marker.touch()
    return VENV / "bin" / "litellm"


# -- processes --------------------------------------------------------------------------------


@contextmanager
def redis_stack() -> Iterator[str]:
    port = free_port()
    while port in TAKEN_PORTS:
        port = free_port()
    script = str(ROOT / "scripts" / "redis-stack.sh")
    subprocess.run(["bash", script, "start", str(port)], check=True, capture_output=True)
    try:
        yield f"redis://127.0.0.1:{port}"
    finally:
        subprocess.run(["bash", script, "stop", str(port)], check=False, capture_output=True)


@contextmanager
def running(process: subprocess.Popen[bytes], ready_url: str) -> Iterator[None]:
    try:
        wait_http(ready_url, process, timeout=300)
        yield
    finally:
        stop(process)


def start_litellm(command: Path, config: Path, port: int) -> subprocess.Popen[bytes]:
    """The proxy with its default single worker; stderr to a file ``stop`` removes."""
    fd, name = tempfile.mkstemp(prefix="race-litellm-", suffix=".log")
    # Loopback only: the bundled cost map and catalogs instead of fetching them.
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_OFFLINE_MODE": "true"}
    with os.fdopen(fd, "wb") as log:
        process = subprocess.Popen(
            [str(command), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
            cwd=config.parent, env=env, stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    LOGS[process.pid] = Path(name)
    return process


def vetcache_config(redis_url: str, upstream: str, key: str, args: argparse.Namespace) -> str:
    # lookup_budget_ms: LiteLLM waits up to 5 s for its lookup's embedding
    # (SEMANTIC_CACHE_EMBEDDING_TIMEOUT_SECONDS); vetcache gets the same 5 s instead of its
    # 50 ms fail-open default, so queueing at c=32 is measured, not turned into misses.
    digest = hashlib.sha256(key.encode()).hexdigest()
    return (
        f"auth: {{api_keys: [{{tenant: race, key_sha256: '{digest}'}}]}}\n"
        f"redis_url: '{redis_url}/0'\n"
        f"cache: {{threshold: {args.threshold}, lookup_budget_ms: 5000, "
        f"embedding_backend: {args.backend}, onnx_dir: '{args.onnx_dir}'}}\n"
        f"model_list:\n  - {{model_name: fake-gpt, model: openai/race-vetcache, "
        f"api_base: '{upstream}', api_key: unused}}\n"
    )


def litellm_config(redis_url: str, upstream: str, key: str, threshold: float) -> str:
    # Threshold: vetcache hits when cosine similarity >= cache.threshold. LiteLLM's
    # RedisSemanticCache passes redisvl distance_threshold = 1 - similarity_threshold
    # (litellm/caching/redis_semantic_cache.py), and redisvl's range query keeps entries whose
    # Redis COSINE distance, 1 - cosine, is <= that: cosine >= similarity_threshold. So the
    # same number is the same bar. Isolation: RediSearch indexes DB 0 only, so both caches
    # share it; LiteLLM's index and key prefix are "litellm_race" (vetcache's "vetcache:v*"
    # and "vc:e:"), so neither search can see the other's entries.
    # Embeddings: the alias "race-embed" goes to the fake upstream, which runs the model
    # vetcache runs; the upstream names tell the two gateways' calls apart in /fake/requests.
    return (
        "model_list:\n"
        f"  - {{model_name: fake-gpt, litellm_params: {{model: openai/race-litellm, "
        f"api_base: '{upstream}', api_key: unused}}}}\n"
        f"  - {{model_name: race-embed, litellm_params: {{model: openai/race-embed, "
        f"api_base: '{upstream}', api_key: unused}}}}\n"
        "litellm_settings:\n  cache: true\n  cache_params:\n    type: redis-semantic\n"
        f"    redis_url: '{redis_url}'\n    similarity_threshold: {threshold}\n"
        "    redis_semantic_cache_embedding_model: race-embed\n"
        "    redis_semantic_cache_index_name: litellm_race\n"
        f"general_settings:\n  master_key: '{key}'\n"  # it refuses to start without one
    )


# -- traffic ----------------------------------------------------------------------------------


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


# -- workload and report ----------------------------------------------------------------------


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


def report(results: dict[str, Any]) -> list[str]:
    miss = results["misses"]
    rows: list[tuple[str, float, float]] = []
    for q in (0.5, 0.99):
        rows.append((f"miss overhead p{round(q * 100)} ms (c=1)",
                     pct(miss["vetcache"]["overhead"], q), pct(miss["LiteLLM"]["overhead"], q)))  # fmt: skip
    for kind in ("semantic", "exact"):
        for level in LEVELS:
            v, ll = (results["hits"][f"{kind} c={level} {n}"] for n in ("vetcache", "LiteLLM"))
            rows += [(f"{kind} hit p50 ms c={level}", v["p50"], ll["p50"]),
                     (f"{kind} hit p99 ms c={level}", v["p99"], ll["p99"]),
                     (f"{kind} hits/s c={level}", v["hits_per_s"], ll["hits_per_s"]),
                     (f"{kind} hit ratio c={level}", v["hit_ratio"], ll["hit_ratio"])]  # fmt: skip
    para = results["paraphrases"]
    rows.append(("paraphrase hit ratio (c=1)", para["vetcache"], para["LiteLLM"]))
    lines = [f"{'metric':<30} {'vetcache':>10} {'LiteLLM':>10} {'ratio':>8}"]
    for name, v, ll in rows:
        lines.append(f"{name:<30} {v:>10.2f} {ll:>10.2f} {v / ll if ll else float('nan'):>8.3f}")
    return lines + acceptance(results)


def acceptance(results: dict[str, Any]) -> list[str]:
    cell = results["hits"]
    p99 = [
        cell[f"semantic c={level} vetcache"]["p99"] / cell[f"semantic c={level} LiteLLM"]["p99"]
        for level in LEVELS
    ]
    rate = {
        kind: cell[f"{kind} c=32 vetcache"]["hits_per_s"]
        / cell[f"{kind} c=32 LiteLLM"]["hits_per_s"]
        for kind in ("semantic", "exact")
    }
    miss = [pct(results["misses"][n]["overhead"], 0.5) for n in ("vetcache", "LiteLLM")]
    return [
        "acceptance: semantic hit p99 <= 1/3 of LiteLLM's: "
        + ", ".join(f"c={lv} {r:.3f} {'holds' if r <= 1 / 3 else 'FAILS'}" for lv, r in zip(LEVELS, p99, strict=True)),
        "acceptance: hits/s at c=32 >= 3x LiteLLM's: "
        + ", ".join(f"{k} {r:.2f}x {'holds' if r >= 3 else 'FAILS'}" for k, r in rate.items()),
        f"acceptance: miss overhead p50 over the direct upstream: vetcache {miss[0]:.2f} ms, "
        f"LiteLLM {miss[1]:.2f} ms ({'lower' if miss[0] <= miss[1] else 'HIGHER'} for vetcache)",
    ]  # fmt: skip


# -- the run ----------------------------------------------------------------------------------


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


def upstream_lines(counts: dict[str, dict[str, int]], questions: int) -> list[str]:
    """What reached the fake upstream: proof LiteLLM embeds through it, and no hit calls it."""

    def delta(name: str, start: str, end: str) -> int:
        return counts[end].get(name, 0) - counts[start].get(name, 0)

    embed = "/embeddings race-embed"
    return [
        f"upstream /v1/embeddings from LiteLLM: {delta(embed, 'before', 'after_misses')} during "
        f"the {questions} misses, {delta(embed, 'after_misses', 'after')} during the hit phase",
        "upstream chat calls during the hit phase: "
        f"vetcache {delta('/chat/completions race-vetcache', 'after_misses', 'after')}, "
        f"LiteLLM {delta('/chat/completions race-litellm', 'after_misses', 'after')}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--requests", type=int, default=500, help="per hit cell")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="the fake upstream's")
    parser.add_argument("--threshold", type=float, default=0.85, help="cosine, both gateways")
    parser.add_argument("--backend", choices=EMBEDDING_BACKENDS, default="onnx-int8")
    parser.add_argument("--onnx-dir", type=Path, default=ROOT / ".cache" / "bench" / "onnx")
    parser.add_argument("--json", type=Path, help="write the raw numbers here")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: stop what was started
    command = litellm_proxy()
    key = "sk-race-" + secrets.token_hex(16)
    ports = {name: free_port() for name in ("upstream", "vetcache", "litellm")}
    urls = {name: f"http://127.0.0.1:{port}/v1" for name, port in ports.items()}
    with ExitStack() as stack:
        redis_url = stack.enter_context(redis_stack())
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="race-")))
        fake = vetcache(
            "fake-upstream", "--port", str(ports["upstream"]), "--latency-ms", str(args.latency_ms),
            "--embeddings", "model", "--embedding-backend", args.backend, "--onnx-dir", str(args.onnx_dir),
        )  # fmt: skip
        stack.enter_context(running(fake, f"{urls['upstream']}/models"))
        (folder / "vetcache.yaml").write_text(
            vetcache_config(redis_url, urls["upstream"], key, args)
        )
        (folder / "litellm.yaml").write_text(
            litellm_config(redis_url, urls["upstream"], key, args.threshold)
        )
        gateway = vetcache(
            "serve", "--config", str(folder / "vetcache.yaml"), "--port", str(ports["vetcache"])
        )
        stack.enter_context(running(gateway, f"http://127.0.0.1:{ports['vetcache']}/readyz"))
        proxy = start_litellm(command, folder / "litellm.yaml", ports["litellm"])
        stack.enter_context(
            running(proxy, f"http://127.0.0.1:{ports['litellm']}/health/liveliness")
        )
        results = asyncio.run(race(urls, key, args))
    print(f"\nfake upstream latency {args.latency_ms} ms, threshold {args.threshold}, "
          f"backend {args.backend}, {results['config']['questions_used']} questions, "
          f"{args.requests} requests per hit cell; hit percentiles over hits only")  # fmt: skip
    direct, miss = results["misses"]["direct"]["latency"], results["misses"]
    print(f"direct upstream: p50 {pct(direct, 0.5):.2f} ms, p99 {pct(direct, 0.99):.2f} ms")
    print(f"first asks that hit an earlier question instead: vetcache "
          f"{miss['vetcache']['hit_instead']}, LiteLLM {miss['LiteLLM']['hit_instead']}; "
          f"paraphrases where the two disagree: {results['paraphrases']['disagree']}")  # fmt: skip
    print("\n".join(upstream_lines(results["upstream_requests"], len(direct))))
    print("\n".join(report(results)))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
