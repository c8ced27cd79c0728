"""Which last user messages stand alone (``cache.standalone``): a wrong "yes" lets a follow-up
meet a request with another history, so the test errs towards "follow-up"."""

from __future__ import annotations

import pytest

from cache.standalone import is_standalone


@pytest.mark.parametrize(
    "text",
    [
        "How do I get a PAC code to switch networks?",
        "What time does the Leeds branch open on Sundays?",
        "Is there free wifi on your flights?",  # 'there' after 'is' points nowhere
        "What\u2019s the minimum age to hire a car?",  # a typographic apostrophe
        "Do you take American Express at the front desk?",
    ],
)
def test_questions_that_name_what_they_ask_about_stand_alone(text: str) -> None:
    assert is_standalone(text)


@pytest.mark.parametrize(
    "text",
    [
        "Cancel it.",  # too short, and 'it'
        "yes please",
        "the second one",
        "is there a fee for that?",  # 'that'
        "How much does it cost per year?",  # 'it'
        "so what will my monthly payment be?",  # opens by continuing the dialogue
        "ok, how long will the refund take?",
        "can I move them to next Saturday instead?",
        "Combien co\u00fbte l'abonnement mensuel ?",  # not English: the lists cannot tell
        "",
    ],
)
def test_follow_ups_do_not(text: str) -> None:
    assert not is_standalone(text)


def test_the_word_lists_can_be_given() -> None:
    text = "so how do I get a PAC code?"
    assert not is_standalone(text)
    assert is_standalone(text, continuing=frozenset())
    assert not is_standalone("How do I get a PAC code?", pointing=frozenset({"code"}))
