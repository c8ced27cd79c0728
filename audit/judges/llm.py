"""The ``llm`` judge: a ContextRelevance-style rubric sent through litellm to any model.

The model gets the new prompt, the cached prompt and the cached answer, and must answer
``{"score": 0-1, "reason": "..."}``: how fully the cached answer serves the new prompt.
Malformed output is asked for once more; a second failure, a timeout or an upstream error is
an ``error`` judgement (counted, never a false positive).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from audit.judges.base import Judge, verdict_for
from audit.llm_client import close_litellm_clients, import_litellm
from audit.schema import AuditJob, Judgement

log = logging.getLogger("vetcache.audit.llm")

RUBRIC = """You audit a semantic cache. A user asked NEW PROMPT. The cache answered with \
CACHED ANSWER, which was written for CACHED PROMPT. Decide how fully CACHED ANSWER serves \
NEW PROMPT: 1.0 when it answers NEW PROMPT completely and correctly, 0.0 when it answers a \
different question (watch for negation, different numbers or dates, swapped names or places, \
a different audience or scope, an opposite intent). Reply with JSON only: \
{"score": <number from 0 to 1>, "reason": "<one short line>"}"""

_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


class LLMJudgeSettings(BaseModel):
    """Which model judges, and how to reach it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = "openai/gpt-4o-mini"
    """litellm ``provider/model``."""
    api_base: str | None = None
    """Base URL of the provider; omit for its default."""
    api_key_env: str | None = None
    """Name of the environment variable holding the provider key."""
    api_key: SecretStr | None = Field(default=None, exclude=True)
    """The key itself, resolved from ``api_key_env`` by the gateway's settings at start."""
    timeout: float = Field(default=30.0, gt=0)
    """Seconds per judge call."""
    max_answer_chars: int = Field(default=4000, ge=100)
    """The cached answer is cut to this length before it is sent."""


class _Reply(BaseModel):
    score: float = Field(ge=0.0, le=1.0)
    reason: str = Field(min_length=1)


def parse_reply(content: str | None) -> _Reply | None:
    """The judge's ``{"score", "reason"}``, found even inside prose or code fences."""
    match = _JSON_OBJECT.search(content or "")
    if match is None:
        return None
    try:
        return _Reply.model_validate(orjson.loads(match.group(0)))
    except (orjson.JSONDecodeError, ValidationError):
        return None


class LLMJudge(Judge):
    """Asks a language model to score the cached answer against the new prompt."""

    def __init__(self, settings: LLMJudgeSettings) -> None:
        self.settings = settings
        self.name = f"llm/1:{settings.model}"
        self._litellm = import_litellm()

    def _messages(self, job: AuditJob) -> list[dict[str, str]]:
        answer = job.cached_answer[: self.settings.max_answer_chars]
        user = (
            f"NEW PROMPT:\n{job.new_prompt}\n\nCACHED PROMPT:\n{job.cached_prompt}\n\n"
            f"CACHED ANSWER:\n{answer}"
        )
        return [{"role": "system", "content": RUBRIC}, {"role": "user", "content": user}]

    async def _ask(self, messages: list[dict[str, str]]) -> str | None:
        params: dict[str, Any] = {
            "model": self.settings.model,
            "messages": messages,
            "timeout": self.settings.timeout,
            "temperature": 0,
            "max_retries": 0,
        }
        if self.settings.api_base:
            params["api_base"] = self.settings.api_base
        if self.settings.api_key is not None:
            params["api_key"] = self.settings.api_key.get_secret_value()
        elif self.settings.api_base:
            params["api_key"] = "no-key"  # self-hosted servers need none; the SDK wants one
        response = await self._litellm.acompletion(**params)
        content = response.choices[0].message.content
        return content if isinstance(content, str) else None

    async def aclose(self) -> None:
        """Close litellm's cached HTTP clients (kept process-wide by litellm)."""
        await close_litellm_clients()

    async def judge(self, job: AuditJob) -> Judgement:
        messages = self._messages(job)
        try:
            for _attempt in range(2):
                reply = parse_reply(await self._ask(messages))
                if reply is not None:
                    return Judgement(
                        verdict=verdict_for(reply.score),
                        score=reply.score,
                        reason=reply.reason[:300],
                        judge=self.name,
                    )
            reason = "judge reply was not the JSON asked for, twice"
        except Exception as exc:  # noqa: BLE001 - any failure of the judge call is an error verdict
            reason = f"judge call failed: {type(exc).__name__}"
        log.warning("judge error job_id=%s: %s", job.job_id, reason)
        return Judgement(verdict="error", score=None, reason=reason, judge=self.name)
