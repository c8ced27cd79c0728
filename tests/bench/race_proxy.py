"""The race's processes: the LiteLLM proxy from a venv of its own (made once under
``.cache/bench`` at .venv's litellm version: its dependencies must not move the project's
pins), Redis Stack, and the two gateways' configurations (same Redis, same threshold, each
cache in its own index)."""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from packaging.requirements import Requirement

from tests.conftest import LOGS, ROOT, free_port, stop, wait_http

VENV = ROOT / ".cache" / "bench" / "litellm-proxy-venv"
TAKEN_PORTS = {6399, 6411}  # other runs' Redis servers on this machine


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
    # The lookup budget is vetcache's default (cache.lookup_budget_ms, 50 ms) unless
    # --lookup-budget-ms says otherwise: a lookup the embedder's queue cannot serve in time
    # is shed and answered upstream (a miss in the hit cells), as in production. LiteLLM waits
    # up to 5 s for its lookup's embedding (SEMANTIC_CACHE_EMBEDDING_TIMEOUT_SECONDS).
    digest = hashlib.sha256(key.encode()).hexdigest()
    budget = f"lookup_budget_ms: {args.lookup_budget_ms}, " if args.lookup_budget_ms else ""
    return (
        f"auth: {{api_keys: [{{tenant: race, key_sha256: '{digest}'}}]}}\n"
        f"redis_url: '{redis_url}/0'\n"
        f"cache: {{threshold: {args.threshold}, {budget}"
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
