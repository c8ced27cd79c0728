"""No prompt or answer text, and no key, in logs at INFO or above."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from proxy.auth import hash_key
from tests.conftest import route

pytestmark = pytest.mark.integration

SECRET_PROMPT = "zebra-quartz-7731 is my private question"
KEY = "sk-logging-test-key-123"


def test_logs_carry_no_prompt_answer_or_key(
    gateway_client: Callable[..., TestClient],
    fake_upstream: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = gateway_client(
        access_log=True,
        auth={"api_keys": [{"tenant": "t", "key_sha256": hash_key(KEY)}]},
        model_list=[
            route("fake-gpt", "fake-gpt", fake_upstream),
            route("broken", "error-500", fake_upstream),
            route("cut", "truncate", fake_upstream),
        ],
    )
    headers = {"authorization": f"Bearer {KEY}"}
    messages = [{"role": "user", "content": SECRET_PROMPT}]
    for model, stream in [
        ("fake-gpt", False),
        ("fake-gpt", True),
        ("broken", False),
        ("cut", True),
    ]:
        client.post(
            "/v1/chat/completions",
            headers=headers,
            json={"model": model, "messages": messages, "stream": stream},
        )
    client.post("/v1/chat/completions", headers={"authorization": "Bearer sk-wrong"}, json={})
    loud = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert any(r.name == "vetcache.access" for r in loud)  # the capture did see the gateway
    for record in loud:
        text = record.getMessage()
        assert "zebra-quartz" not in text, record.name
        assert KEY not in text and "sk-wrong" not in text, record.name
