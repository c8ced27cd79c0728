"""A Redis without the Query Engine is refused at start, with what to run instead."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cache.errors import StoreUnusable
from cache.stores.redis import RedisStore
from tests.conftest import ROOT, free_port, stop, vetcache

pytestmark = pytest.mark.integration

SERVER = ROOT / ".cache" / "redis-stack" / "redis-stack-server" / "bin" / "redis-server"


@pytest.fixture
def plain_redis(redis_url: str) -> Iterator[str]:
    """A bare redis-server, no modules loaded (the binary comes with the Redis Stack the
    session fixture installed)."""
    assert SERVER.exists(), "scripts/redis-stack.sh install provides the server binary"
    port = free_port()
    process = subprocess.Popen(
        [
            str(SERVER),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            probe = subprocess.run(
                [str(SERVER.parent / "redis-cli"), "-p", str(port), "ping"],
                capture_output=True,
                check=False,
            )
            if probe.stdout.strip() == b"PONG":
                break
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


async def test_store_refuses_redis_without_query_engine(plain_redis: str) -> None:
    store = RedisStore(plain_redis)
    try:
        with pytest.raises(StoreUnusable, match=r"no Query Engine.*scripts/redis-stack.sh start"):
            await store.open(384)
    finally:
        await store.close()


def test_gateway_does_not_start_on_redis_without_query_engine(
    plain_redis: str, tmp_path: Path
) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text(
        f"auth: {{enabled: false}}\nredis_url: '{plain_redis}'\nmodel_list:\n"
        "  - {model_name: m, model: openai/m, api_base: 'http://127.0.0.1:9/v1'}\n"
    )
    process = vetcache("serve", "--config", str(config), "--port", str(free_port()))
    try:
        process.wait(timeout=120)
    finally:
        from tests.conftest import child_log

        log = child_log(process)
        stop(process)
    assert process.returncode != 0
    assert "no Query Engine" in log
