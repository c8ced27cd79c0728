"""Where ``vetcache train``'s pairs come from: pair files (the 8-column TSV and the older
formats) and the audit ledger's verdicts, reviews and feedback, each with its provenance."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from audit.errors import InputError
from audit.schema import AuditJob, Verdict
from audit.training.files import load_pair_file
from audit.training.ledger import family_of, ledger_pairs
from tests.conftest import ROOT

HEADER = "id\tfamily\tproduct\tkind\tlanguage\ttext_a\ttext_b\tlabel\n"
LONG = " ".join(["word"] * 45)


def test_an_eight_column_file_keeps_family_cohorts_and_line(tmp_path: Path) -> None:
    path = tmp_path / "p.tsv"
    path.write_text(
        HEADER
        + "b-1\tb-f1\tBilling\tnegation\ten\tCan I pay by card?\tCan I not pay by card?\t0\n"
        + f"b-2\tb-f1\tbilling\tparaphrase\tes\t{LONG}\tDo you take cards?\t1\n"
    )
    first, second = load_pair_file(path)
    assert (first.label, first.family, first.cohorts.product) == (0, "p.tsv:b-f1", "billing")
    assert (first.cohorts.kind, first.cohorts.length, first.cohorts.source) == (
        "negation", "short", "file",
    )  # fmt: skip
    assert first.provenance.source == "file" and first.provenance.ref == f"{path}:2"
    assert (second.cohorts.language, second.cohorts.length) == ("es", "long")


def test_every_bad_row_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text(HEADER + "x\tf\tp\tk\ten\ta\tb\t2\n" + "y\tf\tp\tk\ten\t\tb\t1\n" + "z\tf\n")
    with pytest.raises(InputError) as caught:
        load_pair_file(path)
    assert [e.split(": ", 1)[0] for e in caught.value.errors] == [
        f"{path}:2", f"{path}:3", f"{path}:4",
    ]  # fmt: skip
    assert "label must be 0 or 1" in caught.value.errors[0]
    assert "empty text_a" in caught.value.errors[1]


def test_an_older_pair_file_reads_its_category_as_the_kind() -> None:
    pairs = load_pair_file(ROOT / "tests" / "fixtures" / "prompt_pairs.tsv")
    assert len(pairs) > 100
    assert {p.cohorts.kind for p in pairs} >= {"near_repeat", "negation"}
    assert all(p.cohorts.language for p in pairs)


def test_conversation_rows_cannot_be_trained_on() -> None:
    with pytest.raises(InputError, match="conversation rows"):
        load_pair_file(ROOT / "tests" / "fixtures" / "conversation_pairs.jsonl")


# --- the ledger -----------------------------------------------------------------------------


def job(new: str = "Don't cancel my plan", **extra: Any) -> AuditJob:
    values: dict[str, Any] = {
        "job_id": uuid.uuid4().hex, "request_id": uuid.uuid4().hex, "entry_id": "e1",
        "new_prompt": new, "cached_prompt": "Cancel my plan", "cached_answer": "Done.",
        "similarity": 0.92, "threshold": 0.9, "namespace": "shop", "model": "m",
        "embedder": "emb:1", "verifier": "verifier:v:abc:onnx-int8", "verifier_score": 0.97,
    }  # fmt: skip
    values.update(extra)
    return AuditJob(**values)


def verdict(the_job: AuditJob, kind: str, source: str = "judge", at: float = 0.0) -> Verdict:
    judge = "contrast/2" if source == "judge" else source
    return Verdict(
        id=uuid.uuid4().hex, source=source, job=the_job, verdict=kind, judge=judge,
        created_at=at or time.time(),
    )  # fmt: skip


def test_a_false_hit_is_a_hard_negative_and_a_correct_one_a_positive() -> None:
    false_hit, good_hit = job(), job("Cancel my plan please")
    pairs = ledger_pairs([verdict(false_hit, "false_positive"), verdict(good_hit, "correct")])
    assert [(p.text_b, p.label) for p in pairs] == [
        ("Don't cancel my plan", 0), ("Cancel my plan please", 1),
    ]  # fmt: skip
    first = pairs[0]
    assert (first.text_a, first.family) == ("Cancel my plan", family_of("cancel my plan!"))
    assert (first.cohorts.product, first.cohorts.kind, first.cohorts.source) == (
        "shop", "hit", "ledger",
    )  # fmt: skip
    assert first.provenance.judge == "contrast/2" and first.provenance.embedder == "emb:1"
    # The verifier that let it through, and its score: a hard negative it scored high.
    assert (first.provenance.verifier, first.provenance.verifier_score) == (
        "verifier:v:abc:onnx-int8", 0.97,
    )  # fmt: skip
    assert first.provenance.ref == f"job {false_hit.job_id} request {false_hit.request_id}"


def test_near_misses_judged_correct_are_positives_and_unsure_labels_are_skipped() -> None:
    near = job("Cancel the plan", near_miss=True)
    pairs = ledger_pairs(
        [
            verdict(near, "correct"),
            verdict(job("a"), "uncertain"),
            verdict(job("b"), "error"),
            verdict(job("c", admission=True), "correct"),
            verdict(job("d", exact=True), "correct"),
        ]
    )
    assert [(p.text_b, p.label, p.cohorts.kind) for p in pairs] == [
        ("Cancel the plan", 1, "near_miss")
    ]


def test_a_review_overrides_the_judge_and_feedback_counts_only_as_a_thumbs_down() -> None:
    reviewed, complained, praised = job("x1"), job("x2"), job("x3")
    pairs = ledger_pairs(
        [
            verdict(reviewed, "false_positive", at=1.0),
            verdict(reviewed, "correct", source="review", at=2.0),
            verdict(complained, "correct", at=1.0),
            verdict(complained, "false_positive", source="feedback", at=2.0),
            verdict(praised, "false_positive", at=1.0),
            verdict(praised, "correct", source="feedback", at=2.0),
        ]
    )
    found = {p.text_b: (p.label, p.provenance.source, p.cohorts.source) for p in pairs}
    assert found == {
        "x1": (1, "review", "review"),
        "x2": (0, "feedback", "feedback"),
        "x3": (0, "ledger", "ledger"),
    }
