"""Cache keys: hard partitions where the answer could differ, matching where it cannot."""

from __future__ import annotations

from typing import Any

import pytest

from cache.errors import NotCacheable
from cache.keys import derive_key

USER = {"role": "user", "content": "How do I reverse a list in Python?"}


def key(body_changes: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    body = {"model": "m", "messages": [{"role": "system", "content": "Be brief."}, USER]}
    body.update(body_changes or {})
    options = {"tenant": "t", "namespace": "default", "embedder": "e1", **kwargs}
    return derive_key(body, **options)


BASE = key()


@pytest.mark.parametrize(
    ("changes", "options"),
    [
        ({}, {"tenant": "other"}),
        ({}, {"namespace": "other"}),
        ({}, {"embedder": "e2"}),
        ({"model": "m2"}, {}),
        ({"messages": [{"role": "system", "content": "Be verbose."}, USER]}, {}),
        ({"messages": [{"role": "developer", "content": "Be brief."}, USER]}, {}),
        ({"messages": [USER]}, {}),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, {}),
        ({"tool_choice": "none"}, {}),
        ({"response_format": {"type": "json_object"}}, {}),
        ({"temperature": 1.5}, {}),
        ({"max_tokens": 5}, {}),
        ({"seed": 3}, {}),
        ({"vendor_param": 1}, {}),
    ],
)
def test_what_can_change_the_answer_splits_the_scope(
    changes: dict[str, Any], options: dict[str, Any]
) -> None:
    other = key(changes, **options)
    assert other.scope != BASE.scope
    assert other.exact != BASE.exact


@pytest.mark.parametrize(
    "changes",
    [
        {"stream": True},
        {"user": "u-1"},
        {"stream_options": {"include_usage": True}},
        {"metadata": {"a": "b"}},
    ],
)
def test_neutral_fields_keep_the_scope(changes: dict[str, Any]) -> None:
    assert key(changes) == BASE


def test_prompt_is_not_in_the_scope() -> None:
    paraphrase = key(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Reverse a Python list?"},
            ]
        }
    )
    assert paraphrase.scope == BASE.scope
    assert paraphrase.exact != BASE.exact
    assert paraphrase.text == "Reverse a Python list?"


def test_exact_layer_ignores_whitespace_only() -> None:
    spaced = key(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "  How do I reverse\na list in Python? "},
            ]
        }
    )
    assert spaced.exact == BASE.exact
    shouted = key(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "HOW do I reverse a list in Python?"},
            ]
        }
    )
    assert shouted.exact != BASE.exact


def conversation(first_question: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": first_question},
            {"role": "assistant", "content": "Paris."},
            {"role": "user", "content": "And its population?"},
        ]
    }


def test_last_user_policy_requires_the_same_history() -> None:
    france = key(conversation("Capital of France?"))
    texas = key(conversation("Capital of Texas?"))
    assert france.text == texas.text == "And its population?"
    assert france.scope != texas.scope


def test_last_turns_policy_forgets_older_history() -> None:
    long = {
        "messages": [
            {"role": "user", "content": "old question A"},
            {"role": "assistant", "content": "old answer"},
            {"role": "user", "content": "Capital of France?"},
            {"role": "assistant", "content": "Paris."},
            USER,
        ]
    }
    other_old = {
        **long,
        "messages": [{"role": "user", "content": "old question B"}, *long["messages"][1:]],
    }
    assert (
        key(long, policy="last_turns", last_turns=2).scope
        == key(other_old, policy="last_turns", last_turns=2).scope
    )
    assert key(long).scope != key(other_old).scope


def test_full_policy_embeds_the_whole_conversation() -> None:
    full = key(conversation("Capital of France?"), policy="full")
    assert "Capital of France?" in full.text and "And its population?" in full.text


def test_content_parts_of_text_are_text() -> None:
    parts = key(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "How do I reverse a list in Python?"}],
                }
            ]
        }
    )
    assert parts.text == USER["content"]


@pytest.mark.parametrize(
    "last",
    [
        {"role": "assistant", "content": "hi"},
        {"role": "tool", "content": "42", "tool_call_id": "c1"},
        {"role": "user", "content": "   "},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}],
        },
    ],
)
def test_requests_without_trailing_user_text_are_not_cacheable(last: dict[str, Any]) -> None:
    with pytest.raises(NotCacheable):
        key({"messages": [USER, last]})
