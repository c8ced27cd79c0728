"""The processes a fault test owns: its own Redis Stack server, and the gateways started
on it (by the ``gateway`` fixture)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.conftest import ROOT, free_port, stop

REDIS_HOME = Path(os.environ.get("VETCACHE_REDIS_HOME") or ROOT / ".cache" / "redis-stack")
"""Where ``scripts/redis-stack.sh`` keeps Redis Stack: it reads the same variable, so a git
worktree can use the checkout's copy."""
SERVER = REDIS_HOME / "redis-stack-server"


class RedisServer:
    """A Redis Stack server owned by one test: a child process (not a daemon) on its own port
    and directory, stopped, paused and resumed by its PID. ``persist`` keeps the data across
    a restart (append-only file), as a production Redis would."""

    def __init__(self, directory: Path, *, persist: bool) -> None:
        self.port = free_port()
        self.directory = directory
        self.persist = persist
        self.process: subprocess.Popen[bytes] | None = None
        self.paused = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        persistence = ["--appendonly", "yes"] if self.persist else ["--appendonly", "no"]
        self.process = subprocess.Popen(
            [
                str(SERVER / "bin" / "redis-server"), "--port", str(self.port),
                "--bind", "127.0.0.1", "--save", "", *persistence,
                "--loadmodule", str(SERVER / "lib" / "redisearch.so"),
                "--loadmodule", str(SERVER / "lib" / "rejson.so"),
                "--dir", str(self.directory), "--logfile", str(self.directory / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        with redis.Redis(port=self.port, socket_timeout=1) as client:
            while True:
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    assert self.process.poll() is None, self.log()
                    assert time.monotonic() < deadline, self.log()
                    time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM (a clean shutdown: the append-only file is complete) and wait."""
        if self.process is None:
            return
        if self.paused:
            self.resume()
        stop(self.process)
        self.process = None

    def pause(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)
        self.paused = False

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def log(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


@dataclass
class Gateway:
    """A ``vetcache serve`` process, and the namespace the test asks in."""

    url: str
    process: subprocess.Popen[bytes]
    config: Path
    namespace: str = field(default_factory=lambda: f"fault-{uuid.uuid4().hex[:8]}")
