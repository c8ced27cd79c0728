"""The ``vetcache`` command as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from proxy import __version__
from proxy.auth import hash_key
from tests.conftest import ROOT, free_port, stop, vetcache, wait_http

pytestmark = pytest.mark.integration


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxy.cli", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("form", [["version"], ["--version"]])
def test_version(form: list[str]) -> None:
    result = run(*form)
    assert result.returncode == 0 and result.stdout.strip() == f"vetcache {__version__}"


def test_check_config_says_a_yaml_list_is_not_a_config(tmp_path: Path) -> None:
    listed = tmp_path / "list.yaml"
    listed.write_text("- model_name: fake-gpt\n- model: openai/fake-gpt\n")
    result = run("check-config", str(listed))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"vetcache: config error: config_file: {listed}: the top level must be a mapping of "
        "settings (`key: value` lines), not a list"
    )


def test_check_config_accepts_the_local_config() -> None:
    result = run("check-config", "deploy/config/local.yaml")
    assert result.returncode == 0, result.stderr
    assert "fake-gpt" in result.stdout and "auth off" in result.stdout


def test_check_config_names_the_bad_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "auth: {enabled: false}\nmodel_list: [{model_name: a, model: openai/a, timeout: -1}]\n"
    )
    result = run("check-config", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "vetcache: config error: model_list.0.timeout: Input should be greater than 0"
    )


def test_serve_refuses_an_invalid_config(tmp_path: Path) -> None:
    result = run("serve", "--config", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2
    assert "config_file: no such file" in result.stderr
    assert "Traceback" not in result.stderr


def test_audit_worker_on_a_cluster_without_the_setting_says_so(
    redis_cluster_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VETCACHE_REDIS_URL", redis_cluster_url)
    monkeypatch.setenv("VETCACHE_AUTH__ENABLED", "false")
    result = run("audit-worker", "--metrics-port", "0")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "vetcache: audit-worker: cannot start: Redis at "
        f"{redis_cluster_url} is a cluster node; set redis_cluster: true "
        "(VETCACHE_REDIS_CLUSTER=true) so each command goes to the shard owning its key"
    )
    assert "Traceback" not in result.stderr


def test_prepare_embedder_exports_once(tmp_path: Path) -> None:
    # What scripts/install.sh and the image build run: the default (onnx-int8) embedder is
    # exported into cache.onnx_dir, and a second run (a start) loads it without exporting.
    config = tmp_path / "c.yaml"
    config.write_text(f"cache: {{onnx_dir: '{tmp_path / 'onnx'}'}}\n")  # auth left on, no keys
    first = run("prepare-embedder", "--config", str(config))
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("ok: onnx-int8 embedder bundled:all-MiniLM-L6-v2:384:")
    [graph] = (tmp_path / "onnx").glob("*-int8/model.onnx")
    made = graph.stat().st_mtime_ns
    again = run("prepare-embedder", "--config", str(config))
    assert again.returncode == 0 and graph.stat().st_mtime_ns == made
    assert [p.name for p in (tmp_path / "onnx").iterdir()] == [graph.parent.name]

    config.write_text("cache: {embedding_backend: onnx-int4}\n")
    bad = run("prepare-embedder", "--config", str(config))
    assert bad.returncode == 2
    assert bad.stderr.startswith("vetcache: config error: cache.embedding_backend: ")


def test_hash_key_reads_stdin() -> None:
    result = run("hash-key", stdin="sk-example\n")
    assert result.returncode == 0 and result.stdout.strip() == hash_key("sk-example")
    assert run("hash-key").returncode == 2


def test_serve_with_two_workers_answers(fake_upstream: str, tmp_path: Path) -> None:
    config = tmp_path / "gw.yaml"
    config.write_text(
        "auth: {enabled: false}\nmodel_list:\n"
        f"  - {{model_name: fake-gpt, model: openai/fake-gpt, api_base: '{fake_upstream}'}}\n"
    )
    port = free_port()
    process = vetcache("serve", "--config", str(config), "--port", str(port), "--workers", "2")
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", process, timeout=90)
        body = {"model": "fake-gpt", "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(4):
            response = httpx.post(
                f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=30
            )
            assert response.status_code == 200
    finally:
        stop(process)
