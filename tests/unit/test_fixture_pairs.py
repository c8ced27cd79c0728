"""The shipped pair fixture (tests/fixtures/prompt_pairs.tsv) is what its README says: the
tests that embed it count on its sizes, labels and distinct texts."""

from __future__ import annotations

import csv
from collections import Counter

from audit.pairs import load_pairs
from tests.conftest import PROMPT_PAIRS

SIZES = {
    "near_repeat": 30,
    "paraphrase": 52,
    "negation": 32,
    "entity_swap": 32,
    "number_date": 32,
    "scope": 32,
}
SAME_ANSWER = {"near_repeat", "paraphrase"}


def test_every_row_loads_with_the_label_of_its_kind() -> None:
    pairs = load_pairs(PROMPT_PAIRS)
    assert Counter(p.cohort for p in pairs) == SIZES
    assert all(p.label == (p.cohort in SAME_ANSWER) for p in pairs)


def test_ids_texts_and_styles() -> None:
    with PROMPT_PAIRS.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert len({row["id"] for row in rows}) == len(rows) == 210
    texts = [row[column] for row in rows for column in ("text_a", "text_b")]
    assert len(set(texts)) == 420
    assert all(text == text.strip() and text for text in texts)
    for row in rows:
        kind, style = row["category"].split("/")
        assert row["id"].startswith(f"{kind}-")
        assert style in ("minimal", "reworded")
        assert row["split"] == "all" and row["score"] == ""
