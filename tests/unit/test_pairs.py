"""Reading labelled pair files (``audit.pairs``): TSV and JSONL, pairs and triplets, cohorts,
and malformed rows reported with their physical line numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audit import pairs
from audit.errors import InputError
from audit.pairs import Pair, cohort_of, detect_format, load_pairs, parse_pairs

TSV_HEADER = "split\tid\ttext_a\ttext_b\tlabel\tscore\tcategory\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(text: str, fmt: pairs.Format, source: str = "f") -> list[str]:
    with pytest.raises(InputError) as caught:
        parse_pairs(text, source=source, fmt=fmt)
    return caught.value.errors


# --- parsing -------------------------------------------------------------------------------


def test_tsv_pairs_in_the_fow_cache_layout(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "pairs.tsv",
        TSV_HEADER
        + "all\tn1\tCancel my plan\tDon't cancel my plan\t0\t\tnegation/minimal\n"
        + 'all\tp1\tWhy a 429?\tWhat does "too many requests" mean?\t1\t\tparaphrase/reworded\n'
        + "all\tx1\tHello\tHi\t1\t\t\n",
    )
    pairs = load_pairs(path)
    assert pairs == [
        Pair("Cancel my plan", "Don't cancel my plan", 0, "negation", 2),
        Pair("Why a 429?", 'What does "too many requests" mean?', 1, "paraphrase", 3),
        Pair("Hello", "Hi", 1, "all", 4),
    ]
    assert [p.cohort for p in load_pairs(path, cohort_depth=0)] == [
        "negation/minimal",
        "paraphrase/reworded",
        "all",
    ]


def test_tsv_without_a_cohort_column_and_with_crlf() -> None:
    text = "text_a\ttext_b\tlabel\r\na\tb\t1\r\nc\td\t0\r\n"
    pairs = parse_pairs(text, source="f", fmt="tsv")
    assert [(p.text_b, p.label, p.cohort, p.line) for p in pairs] == [
        ("b", 1, "all", 2),
        ("d", 0, "all", 3),
    ]


def test_bom_is_dropped_when_reading_a_file(tmp_path: Path) -> None:
    path = tmp_path / "bom.tsv"
    path.write_bytes("text_a\ttext_b\tlabel\na\tb\t1\n".encode("utf-8-sig"))
    assert load_pairs(path) == [Pair("a", "b", 1, "all", 2)]


def test_tsv_triplets_and_the_cohort_column() -> None:
    text = "query\tpositive\tnegative\tcohort\nq\tp\tn\tbilling/refunds\n"
    assert parse_pairs(text, source="f", fmt="tsv") == [
        Pair("q", "p", 1, "billing", 2),
        Pair("q", "n", 0, "billing", 2),
    ]


def test_jsonl_pairs_and_triplets(tmp_path: Path) -> None:
    rows = [
        {"text_a": "a", "text_b": "b", "label": 1, "category": "negation/minimal"},
        {"text_a": "c", "text_b": "d", "label": "0", "cohort": "scope"},
        {"text_a": "e", "text_b": "f", "label": False},
        {"query": "q", "positive": "p", "negative": "n", "category": "entity_swap/reworded"},
    ]
    lines = [json.dumps(rows[0]), "", *(json.dumps(r) for r in rows[1:])]
    path = write(tmp_path, "pairs.jsonl", "\n".join(lines) + "\n")
    assert load_pairs(path) == [
        Pair("a", "b", 1, "negation", 1),
        Pair("c", "d", 0, "scope", 3),
        Pair("e", "f", 0, "all", 4),
        Pair("q", "p", 1, "entity_swap", 5),
        Pair("q", "n", 0, "entity_swap", 5),
    ]


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("p.tsv", '{"text_a": 1}', "tsv"),
        ("p.jsonl", "text_a\ttext_b", "jsonl"),
        ("p.JSON", "", "jsonl"),
        ("p.txt", '\n  \n {"text_a": "a"}', "jsonl"),
        ("p", "text_a\ttext_b\tlabel", "tsv"),
    ],
)
def test_detect_format(name: str, text: str, expected: str) -> None:
    assert detect_format(Path(name), text) == expected


@pytest.mark.parametrize(
    ("value", "depth", "expected"),
    [
        ("negation/reworded/ambiguous=complementary", 1, "negation"),
        ("negation/reworded/ambiguous=complementary", 2, "negation/reworded"),
        (
            "negation/reworded/ambiguous=complementary",
            0,
            "negation/reworded/ambiguous=complementary",
        ),
        ("paraphrase", 3, "paraphrase"),
        ("  ", 1, "all"),
        (None, 0, "all"),
    ],
)
def test_cohort_depth(value: str | None, depth: int, expected: str) -> None:
    assert cohort_of(value, depth) == expected


# --- malformed input -----------------------------------------------------------------------


def test_malformed_tsv_rows_are_listed_with_physical_line_numbers() -> None:
    text = (
        "text_a\ttext_b\tlabel\tcategory\n"  # 1
        "a\tb\t1\tx\n"  # 2 fine
        "\n"  # 3 blank: skipped, but counted
        "a\tb\t1\n"  # 4 a field short
        "\tb\t0\tx\n"  # 5 empty text_a
        "a\tb\t2\tx\n"  # 6 bad label
        "a\t \tyes\tx\n"  # 7 two problems
        "a\tb\t0\tx\textra\n"  # 8 a field too many
    )
    assert errors_of(text, "tsv", "data/p.tsv") == [
        "data/p.tsv:4: expected 4 tab-separated fields, found 3",
        "data/p.tsv:5: empty text_a",
        'data/p.tsv:6: label must be 0 or 1, found "2"',
        'data/p.tsv:7: empty text_b; label must be 0 or 1, found "yes"',
        "data/p.tsv:8: expected 4 tab-separated fields, found 5",
    ]


def test_malformed_jsonl_rows_are_listed_with_physical_line_numbers() -> None:
    lines = [
        '{"text_a": "a", "text_b": "b", "label": 1}',
        '{"text_a": "a", "text_b": "b", "label": 1',
        "[1, 2]",
        "",
        '{"text_a": "a", "label": 0}',
        '{"query": "q", "positive": "p", "negative": "  "}',
        '{"foo": 1}',
        '{"text_a": "a", "text_b": "b", "label": 2}',
        '{"text_a": 5, "text_b": "b", "label": true}',
        '{"query": "q", "positive": "p"}',
    ]
    errors = errors_of("\n".join(lines), "jsonl")
    assert errors[0].startswith("f:2: bad JSON: Expecting ',' delimiter (column ")
    assert errors[1:] == [
        "f:3: expected one JSON object per line, found a list",
        "f:5: missing text_b",
        "f:6: empty negative",
        "f:7: needs text_a, text_b, label (a pair), query, positive, negative (a triplet) "
        "or a, b, label (a conversation)",
        "f:8: label must be 0 or 1, found 2",
        "f:9: text_a must be a string, found 5",
        "f:10: missing negative",
    ]


def test_a_tsv_header_without_the_needed_columns_is_line_1() -> None:
    assert errors_of("prompt\tother\tlabel\na\tb\t1\n", "tsv") == [
        "f:1: the header needs the columns text_a, text_b, label (pairs) or query, positive, "
        "negative (triplets); found prompt, other, label"
    ]


@pytest.mark.parametrize("text", ["", "\n  \n\t\n"])
@pytest.mark.parametrize("fmt", ["tsv", "jsonl"])
def test_an_empty_file_is_an_error(text: str, fmt: pairs.Format) -> None:
    assert errors_of(text, fmt) == ["f: empty file"]


def test_a_header_without_rows_is_an_error() -> None:
    assert errors_of("text_a\ttext_b\tlabel\n\n", "tsv") == ["f: no rows after the header"]


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        load_pairs(tmp_path / "missing.tsv")
    binary = tmp_path / "binary.tsv"
    binary.write_bytes(b"text_a\ttext_b\tlabel\n\xff\xfe\t1\t0\n")
    with pytest.raises(InputError, match="not UTF-8"):
        load_pairs(binary)


def test_conversation_rows_need_message_lists_and_a_label() -> None:
    turn = '[{"role": "user", "content": "hi"}]'
    lines = [
        f'{{"a": {turn}, "b": {turn}, "same_answer": true, "subtype": "s"}}',
        f'{{"a": {turn}, "b": "hi", "label": 1}}',
        f'{{"a": [], "b": {turn}}}',
    ]
    assert errors_of("\n".join(lines), "jsonl") == [
        "f:2: b must be a non-empty list of message objects",
        "f:3: a must be a non-empty list of message objects; missing label",
    ]
    (pair,) = parse_pairs(lines[0], source="f", fmt="jsonl")
    assert (pair.label, pair.cohort, pair.text_a, pair.fixed) == (1, "s", "", None)
    assert pair.messages == ([{"role": "user", "content": "hi"}],) * 2


def test_a_conversation_row_in_a_tsv_file_is_an_error() -> None:
    assert errors_of("a\tb\tlabel\nx\ty\t1\n", "tsv")[0].startswith("f:1: the header needs")
