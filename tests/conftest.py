"""Fixtures shared by unit and integration tests.

Real parts only: the fake upstream runs as its own ``vetcache fake-upstream`` process and
litellm calls it over HTTP; gateways under test are either built in-process around a
``Settings`` (``gateway_client``) or started as ``vetcache serve`` processes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi.testclient import TestClient

from audit.ledgers.base import Ledger
from audit.schema import AuditJob, Verdict, VerdictKind
from cache import SemanticCache
from proxy.app import create_app
from proxy.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
PROMPT_PAIRS = FIXTURES / "prompt_pairs.tsv"
"""210 labelled prompt pairs written for the project (see tests/fixtures/README.md)."""
T = TypeVar("T")
REDIS_URL = os.environ.get("VETCACHE_TEST_REDIS_URL")
"""A Redis Stack the caller started (CI does); without it the suite starts its own."""
REDIS_CLUSTER_URL = os.environ.get("VETCACHE_TEST_REDIS_CLUSTER_URL")
"""A node of a Redis Cluster with the search module the caller started; without it the
suite starts a 3-primary one."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_cluster_ports(count: int) -> list[int]:
    """Free ports P whose cluster bus port P + 10000 is free too."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port + 10000 > 65535 or port in ports:
            continue
        try:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        ports.append(port)
    return ports


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Wait until ``url`` answers 200, failing fast if ``process`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"process exited with {process.returncode} before {url} answered:\n"
                + child_log(process)
            )
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s:\n" + child_log(process))


def stop(process: subprocess.Popen[bytes]) -> None:
    """End a process this suite started, by its PID."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    path = LOGS.pop(process.pid, None)
    if path is not None:
        path.unlink(missing_ok=True)


LOGS: dict[int, Path] = {}
"""stderr file of each child process, by PID."""


def vetcache(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``vetcache ARGS`` as a child process; its stderr goes to a file (a pipe nobody
    reads would block the child once full) that failures quote."""
    fd, name = tempfile.mkstemp(prefix="vetcache-", suffix=".log")
    with os.fdopen(fd, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "proxy.cli", *args],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    LOGS[process.pid] = Path(name)
    return process


def _x_vetcache(raw: Any) -> str:
    return str(raw.headers["x-vetcache"])


@contextmanager
def served(config: str, directory: Path, timeout: float = 60.0) -> Iterator[str]:
    """A ``vetcache serve`` process with the YAML ``config`` (written into ``directory``) on
    a free port, ready: its base URL (``http://127.0.0.1:<port>``). Stopped on exit."""
    path = directory / "gateway.yaml"
    path.write_text(config)
    port = free_port()
    process = vetcache("serve", "--config", str(path), "--port", str(port))
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", process, timeout)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


def until_hit(ask: Callable[[], T], outcome: Callable[[T], str] = _x_vetcache) -> T:
    """``ask()``'s answer once ``outcome`` of it (by default a raw SDK response's
    ``x-vetcache`` header) says ``hit``: a miss's admission runs after its answer is sent.
    Bounded: 5 s."""
    for _ in range(100):
        answer = ask()
        if outcome(answer) == "hit":
            return answer
        time.sleep(0.05)
    raise AssertionError("the answer was never admitted")


def child_log(process: subprocess.Popen[bytes]) -> str:
    """The last lines a child process wrote to stderr."""
    path = LOGS.get(process.pid)
    return path.read_text(errors="replace")[-3000:] if path and path.exists() else ""


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``VETCACHE_*`` variable from the caller's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("VETCACHE_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[str]:
    """Base URL (``.../v1``) of a ``vetcache fake-upstream`` process."""
    port = free_port()
    process = vetcache("fake-upstream", "--port", str(port))
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", process)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop(process)


async def record_verdicts(
    ledger: Ledger, namespace: str, similarity: float, verdict: VerdictKind, count: int
) -> None:
    """Record ``count`` judge verdicts on served hits at ``similarity`` (seeded labels)."""
    for _ in range(count):
        job = AuditJob(
            job_id=uuid.uuid4().hex, request_id=uuid.uuid4().hex, entry_id="e", new_prompt="n",
            cached_prompt="c", cached_answer="a", similarity=similarity, threshold=0.8,
            namespace=namespace, model="fake-gpt",
        )  # fmt: skip
        await ledger.record(
            Verdict(id=job.job_id, job=job, verdict=verdict, judge="contrast/2",
                    created_at=time.time())
        )  # fmt: skip


def route(alias: str, upstream_model: str, api_base: str, **extra: Any) -> dict[str, Any]:
    """One ``model_list`` entry."""
    return {"model_name": alias, "model": f"openai/{upstream_model}", "api_base": api_base, **extra}


@pytest.fixture
def make_settings(fake_upstream: str) -> Callable[..., Settings]:
    """Settings for a gateway in front of the fake upstream; keyword args override."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "auth": {"enabled": False},
            "access_log": False,
            "cache": {"enabled": False},  # cache tests turn it on with the embedder they need
            "model_list": [
                route("fake-gpt", "fake-gpt", fake_upstream),
                route("fake-embed", "fake-embed", fake_upstream),
            ],
        }
        values.update(overrides)
        return Settings(**values)

    return build


@pytest.fixture
def gateway_client(
    make_settings: Callable[..., Settings],
) -> Iterator[Callable[..., TestClient]]:
    """An in-process gateway (lifespan run) around ``make_settings(**overrides)``."""
    opened: list[TestClient] = []

    def open_client(cache: SemanticCache | None = None, **overrides: Any) -> TestClient:
        app = create_app(make_settings(**overrides), cache=cache)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a real Redis Stack server: the caller's, or one started for this session
    with ``scripts/redis-stack.sh`` and stopped at the end."""
    if REDIS_URL:
        yield REDIS_URL
        return
    port = str(free_port())
    script = str(ROOT / "scripts" / "redis-stack.sh")
    env = dict(os.environ)  # stop with the start's VETCACHE_REDIS_HOME (tests change env)
    subprocess.run(
        ["bash", script, "start", port], check=True, capture_output=True, timeout=300, env=env
    )
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        subprocess.run(
            ["bash", script, "stop", port], check=False, capture_output=True, timeout=60, env=env
        )


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """URL of one node of a real 3-primary Redis Cluster (Redis Stack, search module on each
    shard): the caller's, or one started with ``scripts/redis-stack.sh cluster-start``."""
    if REDIS_CLUSTER_URL:
        yield REDIS_CLUSTER_URL
        return
    ports = [str(port) for port in free_cluster_ports(3)]
    script = str(ROOT / "scripts" / "redis-stack.sh")
    env = dict(os.environ)  # stop with the start's VETCACHE_REDIS_HOME (tests change env)
    subprocess.run(
        ["bash", script, "cluster-start", *ports],
        check=True, capture_output=True, timeout=300, env=env,
    )  # fmt: skip
    try:
        yield f"redis://127.0.0.1:{ports[0]}"
    finally:
        subprocess.run(
            ["bash", script, "cluster-stop", *ports],
            check=False, capture_output=True, timeout=60, env=env,
        )  # fmt: skip
