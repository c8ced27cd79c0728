"""The ``llm`` judge against the fake upstream's scripted judge replies."""

from __future__ import annotations

import httpx
import pytest

from audit.judges.llm import LLMJudge, LLMJudgeSettings, parse_reply
from audit.schema import AuditJob
from tests.conftest import free_port

pytestmark = pytest.mark.integration

JOB = AuditJob(
    job_id="job-1",
    request_id="req-1",
    entry_id="entry-1",
    new_prompt="Don't cancel my subscription",
    cached_prompt="Cancel my subscription",
    cached_answer="Your subscription has been cancelled.",
    similarity=0.91,
    threshold=0.9,
    namespace="billing",
    model="fake-gpt",
)


def judge(fake_upstream: str, model: str, timeout: float = 10.0) -> LLMJudge:
    return LLMJudge(
        LLMJudgeSettings(model=f"openai/{model}", api_base=fake_upstream, timeout=timeout)
    )


def calls(fake_upstream: str, model: str) -> int:
    counts = httpx.get(fake_upstream.removesuffix("/v1") + "/fake/requests").json()
    return int(counts.get(f"/chat/completions {model}", 0))


@pytest.mark.parametrize(
    ("model", "verdict", "score"),
    [
        ("judge-0.05", "false_positive", 0.05),
        ("judge-0.5", "uncertain", 0.5),
        ("judge-0.95", "correct", 0.95),
    ],
)
async def test_valid_replies_become_verdicts(
    fake_upstream: str, model: str, verdict: str, score: float
) -> None:
    result = await judge(fake_upstream, model).judge(JOB)
    assert (result.verdict, result.score, result.reason) == (verdict, score, "scripted")
    assert result.judge == f"llm/1:openai/{model}"


async def test_malformed_reply_is_retried_once_then_an_error(fake_upstream: str) -> None:
    before = calls(fake_upstream, "judge-malformed")
    result = await judge(fake_upstream, "judge-malformed").judge(JOB)
    assert result.verdict == "error" and result.score is None
    assert calls(fake_upstream, "judge-malformed") - before == 2


async def test_one_malformed_reply_is_recovered_by_the_retry(fake_upstream: str) -> None:
    if calls(fake_upstream, "judge-flaky") % 2 == 1:  # line up on a malformed first reply
        await judge(fake_upstream, "judge-flaky").judge(JOB)
    result = await judge(fake_upstream, "judge-flaky").judge(JOB)
    assert result.verdict == "correct" and result.score == 1.0


@pytest.mark.parametrize("model", ["error-500", "error-429", "sleep-3000"])
async def test_failing_or_slow_judge_is_an_error_not_a_false_positive(
    fake_upstream: str, model: str
) -> None:
    result = await judge(fake_upstream, model, timeout=0.5).judge(JOB)
    assert result.verdict == "error"
    assert "failed" in result.reason


async def test_unreachable_judge_is_an_error() -> None:
    result = await judge(f"http://127.0.0.1:{free_port()}/v1", "judge-1.0", timeout=2).judge(JOB)
    assert result.verdict == "error"


@pytest.mark.parametrize(
    ("content", "score"),
    [
        ('{"score": 0.2, "reason": "different intent"}', 0.2),
        ('Sure!\n```json\n{"score": 1, "reason": "same"}\n```', 1.0),
        ('{"score": 1.4, "reason": "x"}', None),
        ('{"score": "high", "reason": "x"}', None),
        ('{"reason": "no score"}', None),
        ("no json here", None),
        (None, None),
    ],
)
def test_parse_reply(content: str | None, score: float | None) -> None:
    reply = parse_reply(content)
    assert (reply.score if reply else None) == score
