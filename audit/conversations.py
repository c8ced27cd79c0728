"""Conversation pairs keyed the way the gateway keys them: what ``vetcache eval`` replays
under a context policy.

A conversation pair (``audit.pairs``: the messages of a cached request and of a new one)
is turned into the pair of texts the semantic layer would compare, by ``cache.keys``'s own
``derive_key`` under the policy: two requests whose scopes differ never meet (similarity
fixed at -1.0, the floor), nor does a request that cannot be cached; an exact repeat of the
compared text in one scope is an exact hit (1.0, served at any threshold); every other pair
is scored by the embedder on the two keys' texts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from audit.pairs import Pair
from cache.errors import NotCacheable
from cache.keys import derive_key
from cache.schema import CacheKey, ContextPolicy

NEVER = -1.0
"""The similarity of two requests that never meet (different scopes, or not cacheable)."""
EXACT = 1.0
"""The similarity of an exact hit."""


def _key(
    messages: Sequence[Mapping[str, Any]], policy: ContextPolicy, last_turns: int
) -> CacheKey | None:
    body = {"model": "eval", "messages": list(messages)}
    try:
        return derive_key(
            body,
            tenant="eval",
            namespace="eval",
            embedder="eval",
            policy=policy,
            last_turns=last_turns,
        )
    except NotCacheable:
        return None


def keyed(pair: Pair, policy: ContextPolicy, last_turns: int = 2) -> Pair:
    """``pair`` as the cache would compare it under ``policy`` (a text pair as it is)."""
    if pair.messages is None:
        return pair
    cached, new = (_key(messages, policy, last_turns) for messages in pair.messages)
    if cached is None or new is None:
        return dataclasses.replace(pair, fixed=NEVER)
    fixed = None
    if cached.scope != new.scope:
        fixed = NEVER
    elif cached.exact == new.exact:
        fixed = EXACT
    return dataclasses.replace(pair, text_a=cached.text, text_b=new.text, fixed=fixed)


def apply_policy(pairs: Sequence[Pair], policy: ContextPolicy, last_turns: int = 2) -> list[Pair]:
    """Every pair ``keyed`` under ``policy``."""
    return [keyed(pair, policy, last_turns) for pair in pairs]
