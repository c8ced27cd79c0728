"""Loop stall: how much one tenant's hostile requests slow another tenant's cache hits.

Starts a ``vetcache fake-upstream`` and a ``vetcache serve`` (auth on with two tenants, the
cache on with the bundled embedder, on the in-process store as ``vetcache serve`` without
Redis runs, or on ``--redis-url``; all on 127.0.0.1, stopped at the end). Tenant B asks one
cached prompt over and over (exact hits) while, in each phase, two attacker processes of
tenant A send one kind of request in a loop:

- ``none``: no attackers (the baseline);
- ``accepted-messages``: the largest body the limits accept, 4096 messages filling
  ``max_body_bytes`` (a fresh nonce each time, so each is a miss through litellm);
- ``accepted-containers``: the most parse work the limits accept: one message and an
  unknown field with ``MAX_JSON_CONTAINERS`` empty arrays and numbers up to the size limit;
- ``refused-115k-messages``: the issue's 3.9 MB body of 115,000 one-word messages;
- ``refused-too-deep``: ``accepted-containers`` with one array too deep at its end: parsed
  and walked in full before it is refused;
- ``headers-40mb``: unauthenticated requests with a 40 MB header.

Prints tenant B's hit latency p50/p99/max per phase, the attackers' request count and
statuses, and the load average (the machine is shared). Bounded: ``--seconds`` per phase.
A benchmark: numbers only, nothing asserted.

    .venv/bin/python tests/bench/loop_stall.py [--seconds 10] [--redis-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import multiprocessing
import os
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import httpx
import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from proxy.auth import hash_key
from proxy.schemas import MAX_MESSAGES
from proxy.settings import Settings
from proxy.wire import MAX_JSON_CONTAINERS, MAX_JSON_DEPTH
from tests.conftest import free_port, route, stop, vetcache, wait_http

ATTACKER, VICTIM = "sk-bench-tenant-a", "sk-bench-tenant-b"
LIMIT: int = Settings.model_fields["max_body_bytes"].default
PROMPT = {"model": "fake-gpt", "messages": [{"role": "user", "content": "Why is the sky blue?"}]}


def accepted_messages(nonce: str) -> bytes:
    shell = len(orjson.dumps({"model": "fake-gpt", "messages": [], "user": nonce}))
    each = (LIMIT - shell) // MAX_MESSAGES - len(b'{"role":"user","content":""},')
    message = {"role": "user", "content": "w " * (each // 2)}
    body = orjson.dumps({"model": "fake-gpt", "messages": [message] * MAX_MESSAGES, "user": nonce})
    assert len(body) <= LIMIT, len(body)
    return body


def dense(nonce: str, tail: bytes = b"") -> bytes:
    """One message and ``extra``: empty arrays up to the container limit, then numbers."""
    head = orjson.dumps({**PROMPT, "user": nonce})[:-1] + b',"extra":['
    arrays = MAX_JSON_CONTAINERS - head.count(b"[") - head.count(b"{") - 1 - tail.count(b"[")
    body = head + b"[]," * arrays + tail
    fill = (LIMIT - len(body) - 3) // 2
    return body + b"0," * fill + b"0]}"


def refused_115k(nonce: str) -> bytes:
    messages = [{"role": "user", "content": "w"}] * 115_000
    return orjson.dumps({"model": "fake-gpt", "messages": messages, "user": nonce})


def too_deep(nonce: str) -> bytes:
    deep = b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1) + b","
    return dense(nonce, deep)


BODIES = {
    "accepted-messages": accepted_messages,
    "accepted-containers": dense,
    "refused-115k-messages": refused_115k,
    "refused-too-deep": too_deep,
}


def attack(url: str, kind: str, until: float, counts: dict[str, int]) -> None:
    """One attacker process: send ``kind`` in a loop until ``until`` (wall clock)."""
    seen: collections.Counter[str] = collections.Counter()
    headers = {"authorization": f"Bearer {ATTACKER}", "content-type": "application/json"}
    with httpx.Client(base_url=url, timeout=60) as client:
        while time.time() < until:
            if kind == "headers-40mb":
                seen[huge_header(url)] += 1
                continue
            body = BODIES[kind](uuid.uuid4().hex)
            seen[str(client.post("/v1/chat/completions", content=body, headers=headers).status_code)] += 1  # fmt: skip
    counts.update({f"{os.getpid()}:{key}": value for key, value in seen.items()})


def huge_header(url: str) -> str:
    host, port = url.removeprefix("http://").split(":")
    head = b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * (40 << 20) + b"\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        try:
            sock.sendall(head)
            return sock.recv(12)[9:12].decode() or "closed"
        except OSError:
            return "reset"


async def victim(url: str, seconds: float) -> tuple[list[float], set[str]]:
    """Tenant B's exact hits, one at a time, for ``seconds``."""
    headers = {"authorization": f"Bearer {VICTIM}"}
    latencies: list[float] = []
    outcomes: set[str] = set()
    async with aiohttp.ClientSession(url, timeout=aiohttp.ClientTimeout(total=60)) as client:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            async with client.post("/v1/chat/completions", json=PROMPT, headers=headers) as reply:
                await reply.read()
            latencies.append((time.perf_counter() - started) * 1000)
            outcomes.add(reply.headers.get("x-vetcache", str(reply.status)))
    return latencies, outcomes


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def phase(url: str, kind: str, seconds: float) -> None:
    with multiprocessing.Manager() as manager:
        counts = manager.dict()
        until = time.time() + seconds + 0.5
        attackers = [
            multiprocessing.Process(target=attack, args=(url, kind, until, counts))
            for _ in range(0 if kind == "none" else 2)
        ]
        for process in attackers:
            process.start()
        time.sleep(0.5 if attackers else 0)  # attackers under way
        latencies, outcomes = asyncio.run(victim(url, seconds))
        for process in attackers:
            process.join(timeout=120)
        statuses: collections.Counter[str] = collections.Counter()
        for key, value in dict(counts).items():
            statuses[key.split(":", 1)[1]] += value
    load = os.getloadavg()[0]
    print(f"{kind:>22} {len(latencies):>6} {pct(latencies, 0.5):>8.1f} {pct(latencies, 0.99):>8.1f} "
          f"{max(latencies):>8.1f}  {','.join(sorted(outcomes)):<6} {load:>5.2f}  "
          f"{dict(statuses) or '-'}")  # fmt: skip


def config(path: Path, upstream: str, redis_url: str | None) -> None:
    keys = [{"tenant": t, "key_sha256": hash_key(k)} for t, k in (("a", ATTACKER), ("b", VICTIM))]
    values = {
        "auth": {"api_keys": keys},
        "access_log": False,
        "log_level": "warning",
        "cache": {"threshold": 0.9},
        "audit": {"enabled": False},
        "model_list": [route("fake-gpt", "fake-gpt", upstream)],
        **({"redis_url": redis_url} if redis_url else {}),
    }
    path.write_text(yaml.safe_dump(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--redis-url", help="Redis Stack for the cache (default: in-process)")
    parser.add_argument("--phases", nargs="+", default=["none", *BODIES, "headers-40mb"])
    args = parser.parse_args()
    upstream_port, gateway_port = free_port(), free_port()
    fake = vetcache("fake-upstream", "--port", str(upstream_port))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        config(path, f"http://127.0.0.1:{upstream_port}/v1", args.redis_url)
        gateway = vetcache("serve", "--config", str(path), "--port", str(gateway_port))
        try:
            wait_http(f"http://127.0.0.1:{upstream_port}/v1/models", fake)
            wait_http(f"http://127.0.0.1:{gateway_port}/readyz", gateway, timeout=180)
            url = f"http://127.0.0.1:{gateway_port}"
            headers = {"authorization": f"Bearer {VICTIM}"}
            httpx.post(f"{url}/v1/chat/completions", json=PROMPT, headers=headers, timeout=60)
            time.sleep(1.0)  # admitted in the background
            print(f"body limit {LIMIT} bytes; {args.seconds:.0f} s per phase; "
                  f"store {'redis' if args.redis_url else 'in-process'}")  # fmt: skip
            print(f"{'attackers send':>22} {'hits':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  "
                  f"{'outcome':<6} {'load':>5}  attackers' statuses")  # fmt: skip
            for kind in args.phases:
                phase(url, kind, args.seconds)
        finally:
            stop(gateway)
            stop(fake)


if __name__ == "__main__":
    main()
