"""Fixtures of the fault tests: each starts its processes on demand and ends every one it
started when the test is over."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, free_port, route, stop, vetcache, wait_http
from tests.integration.faults.rig import Gateway, RedisServer


@pytest.fixture(scope="module")
def redis_binaries() -> None:
    """The Redis Stack binaries (already there when the session Redis was started)."""
    script = str(ROOT / "scripts" / "redis-stack.sh")
    subprocess.run(["bash", script, "install"], check=True, capture_output=True, timeout=300)


@pytest.fixture
def own_redis(redis_binaries: None, tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Start this test's own Redis Stack; every one started is stopped at the end."""
    started: list[RedisServer] = []

    def start(persist: bool = False) -> RedisServer:
        directory = tmp_path / f"redis-{len(started)}"
        directory.mkdir()
        server = RedisServer(directory, persist=persist)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def gateway(fake_upstream: str, tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    """Start ``vetcache serve`` on a Redis; ends every process it started."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(redis_url: str, *routes: dict[str, Any], **overrides: Any) -> Gateway:
        config = tmp_path / f"gateway-{len(processes)}.yaml"
        values: dict[str, Any] = {
            "redis_url": redis_url,
            "auth": {"enabled": False},
            "access_log": False,
            "shutdown_timeout": 15,
            "cache": {"lookup_budget_ms": 200, "threshold": 0.95},
            "audit": {"sample_rate": 1.0, "reclaim_after_s": 5},
            "metrics": {"refresh_s": 3600},  # no ledger reads in the background
            "model_list": [route("fake-gpt", "fake-gpt", fake_upstream), *routes],
            **overrides,
        }
        config.write_text(yaml.safe_dump(values))
        port = free_port()
        process = vetcache("serve", "--config", str(config), "--port", str(port))
        processes.append(process)
        wait_http(f"http://127.0.0.1:{port}/readyz", process, timeout=180)
        return Gateway(f"http://127.0.0.1:{port}", process, config)

    yield start
    for process in processes:
        stop(process)


@pytest.fixture
def audit_worker() -> Iterator[Callable[[Path], subprocess.Popen[bytes]]]:
    """Start ``vetcache audit-worker`` processes; ends every one it started."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(config: Path) -> subprocess.Popen[bytes]:
        name = f"w{len(processes)}"
        process = vetcache(
            "audit-worker", "--config", str(config), "--name", name, "--metrics-port", "0"
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        stop(process)
