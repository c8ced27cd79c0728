"""Which upstream answers may become cache entries: the admission rules, in one place.

An answer is cached only when it is one complete choice that stopped normally (``stop``) and
says something: not cut short (``length``, ``content_filter``, no finish reason), not empty,
not a refusal unless ``admit_refusals``, no tool or legacy function call unless
``admit_tool_calls``, not sampled hotter than ``max_temperature``, and given by the alias
asked for, not a fallback, unless ``admit_fallbacks``.

What litellm hides: it turns an upstream's ``finish_reason: null`` into ``"stop"`` in a JSON
answer and keeps no trace of it (``litellm.types.utils.Choices``), so such an answer is
admitted when it says something; a stream that ends without a finish reason is an error in
litellm and is never admitted.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from cache.schema import CacheEntry, CacheKey
from cache.settings import CacheSettings


def admissible(
    settings: CacheSettings,
    body: Mapping[str, Any],
    completion: Mapping[str, Any],
    answered_by: str | None = None,
) -> bool:
    """Whether ``completion``, the answer to ``body`` given by the alias ``answered_by``
    (None: not known), may be cached."""
    if body.get("n", 1) not in (None, 1):
        return False
    temperature = body.get("temperature")
    ceiling = settings.max_temperature
    if ceiling is not None and isinstance(temperature, int | float) and temperature > ceiling:
        return False
    if answered_by not in (None, body.get("model")) and not settings.admit_fallbacks:
        return False
    choices = completion.get("choices") or []
    if len(choices) != 1 or not isinstance(choices[0], Mapping):
        return False
    return _choice_admissible(settings, choices[0])


def _choice_admissible(settings: CacheSettings, choice: Mapping[str, Any]) -> bool:
    reason = choice.get("finish_reason")
    message = choice.get("message")
    if not isinstance(message, Mapping):
        return False
    if message.get("tool_calls") or message.get("function_call"):
        return settings.admit_tool_calls and reason in ("tool_calls", "function_call", "stop")
    if reason != "stop":
        return False
    if message.get("refusal"):
        return settings.admit_refusals
    content = message.get("content")
    return isinstance(content, str) and content.strip() != ""


def new_entry(
    key: CacheKey,
    completion: Mapping[str, Any],
    answered_by: str | None,
    ttl_s: int,
    pending: bool,
) -> CacheEntry:
    """The entry an admissible ``completion`` becomes under ``key``, admitted now to live
    ``ttl_s`` (``pending`` until its admission policy releases it)."""
    return CacheEntry(
        id=uuid.uuid4().hex,
        scope=key.scope,
        exact=key.exact,
        namespace=key.namespace,
        tenant=key.tenant,
        model=key.model,
        answered_by=answered_by,
        text=key.text,
        response=orjson.dumps(completion).decode(),
        embedder=key.embedder,
        base=key.base,
        prompt=key.prompt,
        created_at=time.time(),
        ttl_s=ttl_s,
        pending=pending,
    )
