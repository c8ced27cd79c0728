"""Request -> ``CacheKey``.

The scope is a hard partition: everything that changes what a correct answer is must match
exactly, or the request never sees the entry. The prompt itself is never in the scope, so
paraphrases of one question still meet. Context policies decide what of the conversation
before the last user message must match:

- ``last_user`` (default): every earlier turn is digested into the scope; only the last user
  message is compared by similarity. A follow-up question hits only after the same history.
- ``last_turns``: only the last ``N`` earlier turns are digested; older history is ignored.
- ``full``: nothing is digested; the whole conversation is the compared text.
- ``standalone``: a last message that stands on its own (``cache.standalone``) is keyed like a
  single-turn prompt (no earlier turn digested); a follow-up ("cancel it", "yes, go ahead")
  as under ``last_user``. Which of the two is itself in the scope, so they never meet.

A key is made in two steps: ``base`` digests everything that must match but the embedding
version, ``prompt`` the compared text; ``versioned_key`` puts them under one version
(``scope`` = base + embedder fingerprint, ``exact`` = scope + prompt). So the same request has
one scope per version, and ``CacheKey.for_version`` (or a migration, from an entry's stored
``base`` and ``prompt``) finds its place under another version without the request.

Two prompts the model sees differently never share a key. The exact layer digests the compared
text as sent (no whitespace or Unicode folding), and text the embedder cannot see makes a
request not cacheable at all (``hidden_text``): format and control characters (categories
``Cf``, ``Cc`` but tab, newline and CR), private-use and surrogate code points, and variation
selectors other than the emoji ones. The embedder's tokenizer drops or blurs them, so a prompt
carrying an instruction in, say, Unicode tag characters would embed exactly as the clean
prompt (similarity 1.0) while the model reads the instruction.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import regex

from cache.errors import NotCacheable
from cache.schema import CacheKey, ContextPolicy
from cache.standalone import is_standalone

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
# ``regex`` (a litellm/tiktoken dependency) knows Unicode categories and property set
# operations; ``re`` does not. ASCII text, the common case, takes the 20x faster ``re`` path.
_HIDDEN = regex.compile(
    r"[\p{Cf}\p{Co}\p{Cs}\p{Cc}--[\t\n\r]]|[\p{Variation_Selector}--[\uFE0E\uFE0F]]",
    regex.V1,
)
_HIDDEN_ASCII = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
TEXT_PART_FIELDS = frozenset({"type", "text"})
"""The fields a text content part may have for the key to understand it whole."""
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
    """Whitespace-collapsed text (to tell a blank prompt; the exact layer compares the text
    as sent: ``"a  b"`` and ``"a b"`` are different prompts to a model, indented code too)."""
    return _SPACE.sub(" ", text).strip()


def hidden_character(text: str) -> str | None:
    """The first character of ``text`` the embedder cannot see (see the module docstring),
    as ``U+XXXX``, or None."""
    found = (_HIDDEN_ASCII if text.isascii() else _HIDDEN).search(text)
    return f"U+{ord(found.group()):04X}" if found is not None else None


def _is_text_part(part: Any) -> bool:
    return (
        isinstance(part, Mapping)
        and part.get("type") == "text"
        and isinstance(part.get("text"), str)
        and part.keys() <= TEXT_PART_FIELDS
    )


def message_text(content: Any) -> str | None:
    """The text of a message's content, or None when it holds anything but text parts the
    key fully understands (``{"type": "text", "text": ...}`` and nothing else: an image part
    with a stray ``text`` field is not text)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content and all(_is_text_part(p) for p in content):
        return "\n".join(part["text"] for part in content)
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
    if last.get("role") != "user":
        raise NotCacheable("the request does not end with a user message", "no_user_text")
    text = message_text(last.get("content"))
    if text is None:
        raise NotCacheable("the last user message holds content other than text", "unknown_content")
    if not normalize(text):
        raise NotCacheable("the last user message is blank", "no_user_text")
    instructions = [m for m in messages if m.get("role") in INSTRUCTION_ROLES]
    turns = [m for m in messages[:-1] if m.get("role") not in INSTRUCTION_ROLES]
    if policy == "full":
        # The turns' text is compared; everything else about them (roles, tool calls, names)
        # must match exactly.
        history: list[Any] = [{k: v for k, v in m.items() if k != "content"} for m in turns]
        text = "\n".join(f"{m.get('role')}: {_turn_text(m)}" for m in [*turns, last])
    elif policy == "last_turns":
        history = turns[-last_turns:] if last_turns > 0 else []
    elif policy == "standalone":
        history = ["standalone"] if is_standalone(text) else ["follow_up", *turns]
    else:
        history = turns
    params = {k: v for k, v in body.items() if k not in NEUTRAL_FIELDS}
    extra = {k: v for k, v in last.items() if k not in ("role", "content")}
    base = _digest("v2", tenant, namespace, body["model"], instructions, params, history, extra)
    hidden = hidden_character(text)
    if hidden is not None:
        raise NotCacheable(
            f"the prompt holds {hidden}, which the embedder cannot see", "hidden_text"
        )
    # The compared messages' content as sent: text parts and a string that join to one
    # text are not one prompt to every model.
    compared = [*turns, last] if policy == "full" else [last]
    prompt = _digest(text, [m.get("content") for m in compared])
    scope, exact = versioned_key(base, prompt, embedder)
    return CacheKey(
        scope=scope,
        exact=exact,
        base=base,
        prompt=prompt,
        embedder=embedder,
        text=text,
        tenant=tenant,
        namespace=namespace,
        model=str(body["model"]),
    )


def versioned_key(base: str, prompt: str, embedder: str) -> tuple[str, str]:
    """(scope, exact) of a request under the embedding version ``embedder``: the one rule
    that puts each version's entries in scopes of their own, so a vector of one version is
    never compared with another's. ``base`` and ``prompt`` (kept on every entry) are all a
    migration needs to place an entry under another version."""
    scope = _digest(base, embedder)
    return scope, _digest(scope, prompt)


def _turn_text(message: Mapping[str, Any]) -> str:
    """An earlier turn's text for the ``full`` policy (no content: empty)."""
    content = message.get("content")
    text = "" if content is None else message_text(content)
    if text is None:
        raise NotCacheable("an earlier turn holds content other than text", "unknown_content")
    return text
