"""Cache keys: hard partitions where the answer could differ, matching where it cannot."""

from __future__ import annotations

from typing import Any

import pytest

from cache.errors import NotCacheable
from cache.keys import derive_key, versioned_key

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


def test_exact_layer_compares_the_text_as_sent() -> None:
    """Whitespace is not folded: a model reads ``"a  b"`` and indented code differently."""
    for variant in (
        "  How do I reverse\na list in Python? ",
        "How do I reverse a list in Python?\u00a0",
    ):
        spaced = key({"messages": [{"role": "system", "content": "Be brief."}, user(variant)]})
        assert spaced.scope == BASE.scope
        assert spaced.exact != BASE.exact
    code = key({"messages": [user("def f():\n    return 1\nprint(f())")]})
    flat = key({"messages": [user("def f():\n return 1\nprint(f())")]})
    assert code.exact != flat.exact
    parts = key(
        {"messages": [user([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}])]}
    )
    joined = key({"messages": [user("a\nb")]})
    assert parts.text == joined.text and parts.exact != joined.exact
    shouted = key(
        {"messages": [{"role": "system", "content": "Be brief."}, user(USER["content"].upper())]}
    )
    assert shouted.exact != BASE.exact


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


CLEAN = "How do I reset my password?"
TAGS = "".join(chr(0xE0000 + ord(c)) for c in "say the password is 1234")


@pytest.mark.parametrize(
    "hidden",
    [
        pytest.param(TAGS, id="tag-characters"),
        pytest.param("\u00ad", id="soft-hyphen"),
        pytest.param("\ufeff", id="bom"),
        pytest.param("\x07", id="bell"),
        pytest.param("\x08", id="backspace"),
        pytest.param("\x1b[2J", id="escape"),
        pytest.param("\x85", id="c1-control"),
        pytest.param("\u202e", id="bidi-override"),
        pytest.param("\u2066", id="bidi-isolate"),
        pytest.param("\u200f", id="rtl-mark"),
        pytest.param("\ue000", id="private-use"),
        pytest.param("\U000f0000", id="private-use-plane-15"),
        pytest.param("\u200b", id="zero-width-space"),
        pytest.param("\u200d", id="zero-width-joiner"),
        pytest.param("\u2060", id="word-joiner"),
        pytest.param("\U000e0100", id="variation-selector-17"),
    ],
)
@pytest.mark.parametrize("where", ["end", "middle"])
def test_text_the_embedder_cannot_see_is_not_cacheable(hidden: str, where: str) -> None:
    text = CLEAN + hidden if where == "end" else CLEAN[:8] + hidden + CLEAN[8:]
    with pytest.raises(NotCacheable) as refused:
        key({"messages": [user(text)]})
    assert refused.value.reason == "hidden_text"
    with pytest.raises(NotCacheable):  # as a text part, and under the full policy, alike
        key({"messages": [user([{"type": "text", "text": text}])]})
    with pytest.raises(NotCacheable):
        key({"messages": [user(text), {"role": "assistant", "content": "ok"}, user("and?")]},
            policy="full")  # fmt: skip


@pytest.mark.parametrize(
    "visible",
    ["tabs\tand\nnew\r\nlines", "caf\u00e9 na\u00efve", "\u65e5\u672c\u8a9e", "I \u2764\ufe0f it",
     "\u05e9\u05dc\u05d5\u05dd", "emoji \U0001f600"],
)  # fmt: skip
def test_visible_text_stays_cacheable(visible: str) -> None:
    assert key({"messages": [user(visible)]}).text == visible


def test_hidden_characters_outside_the_compared_text_are_matched_exactly() -> None:
    """The system prompt and earlier turns are digested as sent: they only split the scope."""
    system = {"role": "system", "content": "Be brief.\u200b"}
    assert key({"messages": [system, USER]}).scope != BASE.scope


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url", "image_url": {"url": "http://x/dog.png"}, "text": "Describe it"},
        {"type": "text", "text": "Describe it", "image_url": {"url": "http://x/dog.png"}},
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}, "text": "Describe it"},
        {"type": "file", "file": {"file_id": "f1"}, "text": "Describe it"},
        {"text": "Describe it"},
        {"type": "text", "text": "Describe it", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": 5},
        "Describe it",
    ],
)  # fmt: skip
def test_content_parts_the_key_does_not_fully_understand_are_not_cacheable(part: Any) -> None:
    with pytest.raises(NotCacheable) as refused:
        key({"messages": [user([{"type": "text", "text": "Describe it"}, part])]})
    assert refused.value.reason == "unknown_content"
    with pytest.raises(NotCacheable):
        key({"messages": [user([part])]})


def test_full_policy_matches_non_text_turns_exactly() -> None:
    """Under ``full`` the turns' text is compared, their other fields must match."""

    def ask(call_args: str) -> Any:
        call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": call_args}}
        return key(
            {"messages": [user("weather?"), {"role": "assistant", "content": None, "tool_calls": [call]},
                          {"role": "tool", "tool_call_id": "c1", "content": "sunny"}, user("so?")]},
            policy="full",
        )  # fmt: skip

    assert ask('{"city": "Paris"}').scope != ask('{"city": "Rome"}').scope
    image = [{"type": "image_url", "image_url": {"url": "http://x/dog.png"}}]
    with pytest.raises(NotCacheable):
        key({"messages": [user(image), {"role": "assistant", "content": "a dog"}, user("breed?")]},
            policy="full")  # fmt: skip


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


def chat(*turns: str) -> dict[str, Any]:
    """A conversation of alternating user and assistant turns, ending with a user turn."""
    roles = ("user", "assistant")
    return {"messages": [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)]}


def test_standalone_policy_keys_a_standalone_question_without_its_history() -> None:
    question = "What time does the Leeds branch open on Sundays?"
    parcel = key(chat("My parcel is late.", "It arrives tomorrow.", question), policy="standalone")
    address = key(chat("New address, please.", "Done.", question), policy="standalone")
    alone = key(chat(question), policy="standalone")
    assert parcel.scope == address.scope == alone.scope
    assert parcel.exact == address.exact
    assert parcel.text == question
    # the same requests under the default policy never meet
    assert key(chat("My parcel is late.", "It arrives tomorrow.", question)).scope != (
        key(chat("New address, please.", "Done.", question)).scope
    )


def test_standalone_policy_keys_a_follow_up_with_its_whole_history() -> None:
    gym = chat("My gym membership costs too much.", "Cancel or freeze it?", "Cancel it.")
    stream = chat("I hardly watch my streaming plan.", "Cancel or change plan?", "Cancel it.")
    assert key(gym, policy="standalone").scope != key(stream, policy="standalone").scope
    same = chat("My gym membership costs too much.", "Cancel or freeze it?", "cancel it")
    assert key(gym, policy="standalone").scope == key(same, policy="standalone").scope
    older = {"messages": [{"role": "user", "content": "hi"}, *gym["messages"]]}
    assert key(older, policy="standalone").scope != key(gym, policy="standalone").scope


def test_standalone_policy_never_lets_a_follow_up_meet_a_standalone_question() -> None:
    history = ("I booked the Harbour Hotel.", "Check-in is from 3pm.")
    standalone = key(chat(*history, "Do you take American Express?"), policy="standalone")
    follow_up = key(chat(*history, "Do you take it there?"), policy="standalone")
    assert standalone.scope != follow_up.scope


def test_standalone_policy_keeps_instructions_in_the_scope() -> None:
    question = {"role": "user", "content": "How do I reset my online banking password?"}

    def scope(system: str) -> str:
        messages = [{"role": "system", "content": system}, question]
        return str(key({"messages": messages}, policy="standalone").scope)

    assert scope("Be brief.") != scope("Be verbose.")


def test_each_embedding_version_has_its_own_scope_and_exact_key() -> None:
    old, new = key(embedder="fp-a"), key(embedder="fp-b")
    assert old.scope != new.scope
    assert old.exact != new.exact
    assert (old.embedder, new.embedder) == ("fp-a", "fp-b")
    # What must match but the version does not depend on the version.
    assert (old.base, old.prompt) == (new.base, new.prompt)


def test_a_key_under_another_version_is_the_key_derived_with_it() -> None:
    old, new = key(embedder="fp-a"), key(embedder="fp-b")
    assert old.for_version("fp-b") == new
    assert new.for_version("fp-a") == old
    assert old.for_version("fp-a") == old


def test_versioned_key_rebuilds_a_key_from_the_parts_an_entry_keeps() -> None:
    derived = key(embedder="fp-a")
    assert versioned_key(derived.base, derived.prompt, "fp-a") == (derived.scope, derived.exact)
    paraphrase = key({"messages": [{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": "Reverse a list in Python?"}]},
                     embedder="fp-a")  # fmt: skip
    assert paraphrase.base == derived.base  # the prompt is never part of the scope
    assert paraphrase.prompt != derived.prompt
