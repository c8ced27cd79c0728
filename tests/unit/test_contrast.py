"""The contrast rules on pairs of this project's own writing (the fow_cache set is for the
quality script, not for tests that could be tuned to it)."""

from __future__ import annotations

import pytest

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
    assert trap.judge == "contrast/1"
