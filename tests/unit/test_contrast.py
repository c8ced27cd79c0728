"""The contrast rules on pairs of this project's own writing (the fow_cache set is for the
quality script, not for tests that could be tuned to it)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.judges.contrast import ContrastJudge
from audit.schema import AuditJob
from cache.contrast import contrasts


@pytest.mark.parametrize(
    ("cached", "new", "check"),
    [
        ("Delete my account", "Do not delete my account", "negation"),
        ("How do I turn on dark mode?", "How do I turn off dark mode?", "negation"),
        ("Is the pool heated?", "Is the pool unheated?", "negation"),
        ("Which plans include roaming?", "Which plans exclude roaming?", "negation"),
        ("What are the benefits of fasting?", "What are the drawbacks of fasting?", "negation"),
        ("Book a table for 4 people", "Book a table for 6 people", "number"),
        ("Wake me at 6am", "Wake me at 6pm", "number"),
        ("Is the museum open in August?", "Is the museum open in December?", "number"),
        ("Can I park for three hours?", "Can I park for five hours?", "number"),
        ("How do I get a visa for Canada?", "How do I get a visa for Mexico?", "entity"),
        (
            "Convert this script from Perl to Ruby",
            "Convert this script from Ruby to Perl",
            "entity",
        ),
        ("Move £20 from checking to savings", "Move £20 from savings to checking", "entity"),
        ("Does the blue cable carry power?", "Does the red cable carry power?", "entity"),
        ("Is my phone covered at home?", "Is my phone covered abroad?", "scope"),
        ("What leave do full-time staff get?", "What leave do part-time staff get?", "scope"),
        # Issue 18's misses: "I" is a numeral here, the target has words after it, and
        # within/outside are scope words.
        ("When did World War I end?", "When did World War II end?", "number"),
        (
            "Move £20 from checking to savings today",
            "Move £20 from savings to checking today",
            "entity",
        ),
        ("Is shipping free within the EU?", "Is shipping free outside the EU?", "scope"),
        ("Is Python faster than Java?", "Is Java faster than Python?", "entity"),
        (
            "How do I convert a Word file to PDF?",
            "How do I convert a PDF to a Word file?",
            "entity",
        ),
        (
            "Did the French navy fight British ships?",
            "Did the British navy fight French ships?",
            "entity",
        ),
        ("Is the 2024 standard stricter?", "Is the 2025 standard stricter?", "number"),
    ],
)
def test_answer_changing_edits_are_found(cached: str, new: str, check: str) -> None:
    found = contrasts(cached, new)
    assert check in [c.check for c in found], found
    assert contrasts(new, cached), "the checks are symmetric"


@pytest.mark.parametrize(
    ("cached", "new"),
    [
        ("How do I reset my router?", "how do i reset my router"),
        ("How do I reset my router?", "HOW DO I RESET MY ROUTER?"),
        ("How do I reset my router?", "Hi there, how can I reset my router?"),
        ("When does the spring term start?", "When does the spring term begin?"),
        ("What's the capital of Peru?", "Which city is Peru's capital?"),
        ("Can I bring my dog to the Lisbon office?", "Are dogs allowed in our Lisbon office?"),
        ("How many vacation days do I have left?", "How much vacation do I have remaining?"),
        ("Is parking free on Sundays?", "Do I pay for parking on a Sunday?"),
        ("What's the refund policy for 30 days?", "What's the 30 day refund policy?"),
        # Issue 18's false vetoes and misread numbers.
        ("Can I take ibuprofen on an empty stomach?", "Is ibuprofen OK without eating first?"),
        ("If you don't mind, how do I reset my router?", "How do I reset my router?"),
        ("Do I charge VAT when selling to the EU?", "When selling to the EU, do I charge VAT?"),
        ("How do I parse a date in JS?", "How do I parse a date in JavaScript?"),
        ("What is 50 USD in euros?", "How much is 50 US dollars in euros?"),
        ("Does a 15 percent tip suffice?", "Does a 15% tip suffice?"),
        ("Which one is cheaper for 2 people?", "Which is cheaper for 2 people?"),
        ("What does a 404 mean?", "What is the meaning of a 404?"),
        ("What is the 2024 standard?", "What does the standard of 2024 say?"),
        ("When did World War I end?", "When did World War 1 end?"),
        ("Compare Python and Java", "Compare Java and Python"),
    ],
)
def test_same_intent_rewordings_pass(cached: str, new: str) -> None:
    assert contrasts(cached, new) == []


def job(cached: str, new: str, similarity: float) -> AuditJob:
    return AuditJob(
        job_id="j", request_id="r", entry_id="e", new_prompt=new, cached_prompt=cached,
        cached_answer="…", similarity=similarity, threshold=0.9, namespace="n", model="m",
    )  # fmt: skip


async def test_contrast_judge_verdicts() -> None:
    judge = ContrastJudge()
    trap = await judge.judge(job("Cancel my order", "Don't cancel my order", 0.93))
    assert trap.verdict == "false_positive" and "negation" in trap.reason
    same = await judge.judge(job("Cancel my order", "Please cancel my order", 0.96))
    assert same.verdict == "correct" and same.score == pytest.approx(0.96)
    unsure = await judge.judge(job("Cancel my order", "Stop the thing I bought", 0.62))
    assert unsure.verdict == "uncertain"
    assert trap.judge == "contrast/2"


# Prompts shaped like those that once contrasted with themselves: a mid-sentence "I'm", a
# name with an apostrophe, "from A to A", numbers with units, Roman numerals.
_PIECES = st.sampled_from(
    "I'm I've I'd I'll O'Brien D'Angelo Australia's from to the my Paris War I II 2024 "
    "15% 6pm 1st one which not don't mind JS JavaScript . ? , and".split()
)
_PROMPTS = st.one_of(st.text(max_size=80), st.lists(_PIECES, max_size=14).map(" ".join))


@settings(max_examples=300, deadline=None)
@given(_PROMPTS)
def test_no_prompt_contrasts_with_itself(text: str) -> None:
    assert contrasts(text, text) == []
    assert ContrastJudge().decide(text, text, 1.0).verdict == "correct"


@pytest.mark.parametrize(
    "text",
    [
        "Can you tell me what I'm supposed to bring?",
        "Where do I go if I've lost my card and I'd like a new one I'll use abroad?",
        "Is Mr O'Brien in the office today?",
        "How do I move my files from home to home?",
    ],
)
def test_seen_self_contrasts_are_gone(text: str) -> None:
    assert contrasts(text, text) == []
