"""Request -> ``CacheKey``.

The scope is a hard partition: everything that changes what a correct answer is must match
exactly, or the request never sees the entry. The prompt itself is never in the scope, so
paraphrases of one question still meet. Context policies decide what of the conversation
before the last user message must match:

- ``last_user`` (default): every earlier turn is digested into the scope; only the last user
  message is compared by similarity. A follow-up question hits only after the same history.
- ``last_turns``: only the last ``N`` earlier turns are digested; older history is ignored.
- ``full``: nothing is digested; the whole conversation is the compared text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from cache.errors import NotCacheable
from cache.schema import CacheKey, ContextPolicy

# Fields that never change what the answer is; every other field (temperature, tools,
# response_format, stop, seed, unknown vendor fields...) is part of the scope, so an unknown
# field can only split the cache, never merge what must stay apart.
NEUTRAL_FIELDS = frozenset(
    {
        "messages", "model", "stream", "stream_options", "user", "metadata", "store",
        "service_tier", "safety_identifier", "prompt_cache_key",
    }
)  # fmt: skip
INSTRUCTION_ROLES = frozenset({"system", "developer"})
_SPACE = re.compile(r"\s+")
NAMESPACE_PATTERN = r"[A-Za-z0-9._-]{1,64}"
"""What a namespace is: 1-64 letters, digits and ``._-`` (it names Redis keys and metric
labels, and comes from a client's header)."""
_NAMESPACE = re.compile(NAMESPACE_PATTERN)


def is_namespace(name: str) -> bool:
    """Whether ``name`` is a namespace, whole (``fullmatch``: ``$`` would let a trailing
    newline through)."""
    return _NAMESPACE.fullmatch(name) is not None


def _digest(*parts: Any) -> str:
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()


def normalize(text: str) -> str:
    """Whitespace-collapsed text: what the exact layer compares."""
    return _SPACE.sub(" ", text).strip()


def message_text(content: Any) -> str | None:
    """The text of a message's content, or None when it holds anything but text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content:
        texts = [part.get("text") for part in content if isinstance(part, Mapping)]
        if all(isinstance(t, str) for t in texts) and len(texts) == len(content):
            return "\n".join(t for t in texts if isinstance(t, str))
    return None


def derive_key(
    body: Mapping[str, Any],
    *,
    tenant: str,
    namespace: str,
    embedder: str,
    policy: ContextPolicy = "last_user",
    last_turns: int = 2,
) -> CacheKey:
    """The cache key of a chat request, or ``NotCacheable``."""
    messages: Sequence[Mapping[str, Any]] = body["messages"]
    last = messages[-1]
    text = message_text(last.get("content")) if last.get("role") == "user" else None
    if text is None or not normalize(text):
        raise NotCacheable("the request does not end with a user text message")
    instructions = [m for m in messages if m.get("role") in INSTRUCTION_ROLES]
    turns = [m for m in messages[:-1] if m.get("role") not in INSTRUCTION_ROLES]
    if policy == "full":
        history: list[Any] = []
        text = "\n".join(
            f"{m.get('role')}: {message_text(m.get('content')) or ''}" for m in [*turns, last]
        )
    elif policy == "last_turns":
        history = turns[-last_turns:] if last_turns > 0 else []
    else:
        history = turns
    params = {k: v for k, v in body.items() if k not in NEUTRAL_FIELDS}
    extra = {k: v for k, v in last.items() if k not in ("role", "content")}
    scope = _digest(
        "v1", tenant, namespace, body["model"], embedder, instructions, params, history, extra
    )
    exact = _digest(scope, normalize(text))
    return CacheKey(
        scope=scope,
        exact=exact,
        text=text,
        tenant=tenant,
        namespace=namespace,
        model=str(body["model"]),
    )
