"""``vetcache audit-worker`` processes on a real Redis: one is killed (SIGKILL) mid-stream,
another finishes its jobs; every job ends with exactly one verdict."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from audit import build_queue_and_ledger
from audit.schema import AuditJob
from audit.settings import AuditSettings
from tests.conftest import child_log, free_port, stop, vetcache

pytestmark = pytest.mark.integration

JOBS = 300


def job(i: int, namespace: str) -> AuditJob:
    return AuditJob(
        job_id=uuid.uuid4().hex, request_id=f"r{i}", entry_id="gone", scope="none",
        new_prompt=f"Book a table for {i + 2}", cached_prompt=f"Book a table for {i + 1}",
        cached_answer="Booked.", similarity=0.95, threshold=0.9, namespace=namespace, model="m", queued_at=time.time(),
    )  # fmt: skip


async def test_killed_worker_loses_no_job(redis_url: str, tmp_path: Path) -> None:
    namespace = uuid.uuid4().hex
    config = tmp_path / "worker.yaml"
    config.write_text(
        f"auth: {{enabled: false}}\nredis_url: '{redis_url}'\n"
        "audit: {reclaim_after_s: 1.0, worker_batch: 4}\n"
    )
    queue, ledger = build_queue_and_ledger(AuditSettings(), redis_url)
    await queue.open()
    try:
        for i in range(JOBS):
            await queue.put(job(i, namespace))
        doomed = vetcache(
            "audit-worker", "--config", str(config), "--name", "doomed", "--metrics-port", "0"
        )
        deadline = time.monotonic() + 60
        while not await ledger.query(namespace=namespace):
            assert doomed.poll() is None, child_log(doomed)
            assert time.monotonic() < deadline, child_log(doomed)
            await asyncio.sleep(0.05)
        os.kill(doomed.pid, signal.SIGKILL)  # mid-stream: some jobs taken, not finished
        doomed.wait(timeout=10)
        judged_before_kill = len(await ledger.query(namespace=namespace, limit=None))
        assert judged_before_kill < JOBS  # work was left
        port = free_port()
        survivor = vetcache(
            "audit-worker", "--config", str(config), "--name", "survivor",
            "--metrics-port", str(port),
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while (judged := len(await ledger.query(namespace=namespace, limit=None))) < JOBS:
                assert survivor.poll() is None, child_log(survivor)
                assert time.monotonic() < deadline, f"jobs were lost: {judged}/{JOBS} judged"
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.5)  # past the reclaim timeout: nothing is judged twice
            verdicts = await ledger.query(namespace=namespace, limit=None)
            async with httpx.AsyncClient() as http:
                page = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        finally:
            stop(survivor)
        # The survivor's own metrics: the verdicts it recorded (the rest were the dead
        # worker's), each with its audit lag.
        samples = {
            (s.name, s.labels.get("verdict", "")): s.value
            for family in text_string_to_metric_families(page)
            for s in family.samples
            if s.labels.get("namespace", namespace) == namespace
        }
        recorded = samples[("vetcache_audit_verdicts_total", "false_positive")]
        assert 0 < recorded <= JOBS - judged_before_kill
        assert samples[("vetcache_audit_lag_seconds_count", "")] == recorded
        assert len(verdicts) == JOBS
        assert len({v.job.job_id for v in verdicts}) == JOBS
        assert {v.verdict for v in verdicts} == {"false_positive"}  # numbers differ: contrast
    finally:
        await queue.close()
        await ledger.close()
