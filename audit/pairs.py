"""Labelled prompt pairs from a file: what ``vetcache eval`` scores and ``vetcache tune
--pairs`` adds to the verdicts.

One row per line, TSV with a header row (``.tsv``) or JSON objects (``.jsonl``, ``.json``;
any other extension: JSONL when the first non-blank character is ``{``, else TSV):
- pair rows: ``text_a`` (the cached prompt), ``text_b`` (the new prompt), ``label`` (1: the
  cached answer serves the new prompt, 0: it does not);
- triplet rows: ``query``, ``positive``, ``negative``: the pairs (query, positive) labelled 1
  and (query, negative) labelled 0;
- conversation rows (JSONL only): ``a`` (the cached request's messages), ``b`` (the new
  request's), ``label`` (or ``same_answer``); ``audit.conversations`` keys both sides under a
  context policy before they are scored.
The cohort of a row is its ``category`` column (else ``cohort``, else ``subtype``; none or
empty: ``all``),
cut to its first ``cohort_depth`` "/"-separated segments (0: the full value). Every malformed
row is reported as ``FILE:LINE: problem`` (physical 1-based lines, a TSV header being line 1)
in one ``InputError``. ``embed_similarities`` scores the pairs with an embedding model.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from audit.errors import InputError
from cache import CacheSettings, build_embedder
from cache.embedder import Vector

Format = Literal["tsv", "jsonl"]
Kind = Literal["pair", "triplet", "conversation"]

PAIR_FIELDS = ("text_a", "text_b", "label")
TRIPLET_FIELDS = ("query", "positive", "negative")
CONVERSATION_FIELDS = ("a", "b")
COHORT_FIELDS = ("category", "cohort", "subtype")
DEFAULT_COHORT = "all"
DEFAULT_COHORT_DEPTH = 1
EMBED_BATCH = 64


class _RowError(Exception):
    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class Pair:
    """One (cached prompt, new prompt) pair; ``label`` 1 when the cached answer serves it."""

    text_a: str
    text_b: str
    label: int
    cohort: str
    line: int
    """Physical line of the row it came from (a triplet gives two pairs on one line)."""
    messages: tuple[Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]]] | None = None
    """A conversation row's two message lists (``text_a``/``text_b`` empty until
    ``audit.conversations.apply_policy`` keys them)."""
    fixed: float | None = None
    """The similarity when no embedding decides it: 1.0 for an exact repeat, -1.0 for two
    requests whose scopes differ or that cannot be cached (they never meet)."""


# --- parsing -------------------------------------------------------------------------------


def cohort_of(value: str | None, depth: int = DEFAULT_COHORT_DEPTH) -> str:
    """The cohort of a category value: its first ``depth`` "/"-segments (0: all of it)."""
    value = (value or "").strip()
    if not value:
        return DEFAULT_COHORT
    return value if depth <= 0 else "/".join(value.split("/")[:depth])


def detect_format(path: Path, text: str) -> Format:
    """TSV or JSONL, by extension, else by the first non-blank character."""
    suffix = path.suffix.lower()
    if suffix == ".tsv":
        return "tsv"
    if suffix in (".jsonl", ".json"):
        return "jsonl"
    return "jsonl" if text.lstrip().startswith("{") else "tsv"


def _kind(record: Mapping[str, Any]) -> Kind | None:
    if all(name in record for name in CONVERSATION_FIELDS) and "text_a" not in record:
        return "conversation"
    if any(name in record for name in PAIR_FIELDS):
        return "pair"
    if any(name in record for name in TRIPLET_FIELDS):
        return "triplet"
    return None


def _text_problem(record: Mapping[str, Any], name: str) -> str | None:
    if name not in record:
        return f"missing {name}"
    value = record[name]
    if not isinstance(value, str):
        return f"{name} must be a string, found {json.dumps(value)}"
    return None if value.strip() else f"empty {name}"


def _label(value: Any) -> int | None:
    """0 or 1 from 0/1, "0"/"1" or false/true; None for anything else."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value in (0, 1):
        return value
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return int(value.strip())
    return None


def _messages_problem(record: Mapping[str, Any], name: str) -> str | None:
    value = record[name]
    if not isinstance(value, list) or not value or not all(isinstance(m, dict) for m in value):
        return f"{name} must be a non-empty list of message objects"
    return None


def _conversation(record: Mapping[str, Any], line: int, cohort: str) -> Pair:
    if "label" not in record and "same_answer" in record:
        record = {**record, "label": record["same_answer"]}
    problems = [p for name in CONVERSATION_FIELDS if (p := _messages_problem(record, name))]
    if problem := _label_problem(record):
        problems.append(problem)
    if problems:
        raise _RowError(problems)
    label = _label(record["label"])
    assert label is not None
    return Pair("", "", label, cohort, line, messages=(record["a"], record["b"]))


def _label_problem(record: Mapping[str, Any]) -> str | None:
    if "label" not in record:
        return "missing label"
    if _label(record["label"]) is None:
        return f"label must be 0 or 1, found {json.dumps(record['label'])}"
    return None


def _cohort_value(record: Mapping[str, Any]) -> str | None:
    for name in COHORT_FIELDS:
        value = record.get(name)
        if value is not None and str(value).strip():
            return str(value)
    return None


def record_pairs(
    record: Mapping[str, Any], line: int, cohort_depth: int = DEFAULT_COHORT_DEPTH
) -> list[Pair]:
    """The pairs of one row (one for a pair row, two for a triplet); ``_RowError`` lists
    what is wrong with it."""
    kind = _kind(record)
    if kind is None:
        raise _RowError(
            [
                "needs text_a, text_b, label (a pair), query, positive, negative (a triplet) "
                "or a, b, label (a conversation)"
            ]
        )
    if kind == "conversation":
        return [_conversation(record, line, cohort_of(_cohort_value(record), cohort_depth))]
    texts = PAIR_FIELDS[:2] if kind == "pair" else TRIPLET_FIELDS
    problems = [problem for name in texts if (problem := _text_problem(record, name))]
    if kind == "pair" and (problem := _label_problem(record)):
        problems.append(problem)
    if problems:
        raise _RowError(problems)
    cohort = cohort_of(_cohort_value(record), cohort_depth)
    if kind == "pair":
        label = _label(record["label"])
        assert label is not None
        return [Pair(record["text_a"], record["text_b"], label, cohort, line)]
    query = record["query"]
    return [
        Pair(query, record["positive"], 1, cohort, line),
        Pair(query, record["negative"], 0, cohort, line),
    ]


def _blank(line: str) -> bool:
    return not line.strip()


def _tsv_header(line: str, number: int, source: str) -> list[str]:
    columns = [column.strip() for column in line.split("\t")]
    if all(c in columns for c in PAIR_FIELDS) or all(c in columns for c in TRIPLET_FIELDS):
        return columns
    raise InputError(
        [
            f"{source}:{number}: the header needs the columns text_a, text_b, label (pairs) "
            f"or query, positive, negative (triplets); found {', '.join(columns)}"
        ]
    )


def _parse_tsv(
    lines: Sequence[str], source: str, cohort_depth: int
) -> tuple[list[Pair], list[str]]:
    numbered = [(n, line) for n, line in enumerate(lines, start=1) if not _blank(line)]
    header_number, header_line = numbered[0]
    columns = _tsv_header(header_line, header_number, source)
    pairs: list[Pair] = []
    errors: list[str] = []
    for number, line in numbered[1:]:
        fields = line.split("\t")
        try:
            if len(fields) != len(columns):
                raise _RowError(
                    [f"expected {len(columns)} tab-separated fields, found {len(fields)}"]
                )
            pairs += record_pairs(dict(zip(columns, fields, strict=True)), number, cohort_depth)
        except _RowError as exc:
            errors.append(f"{source}:{number}: {exc}")
    return pairs, errors


def _json_record(line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _RowError([f"bad JSON: {exc.msg} (column {exc.colno})"]) from None
    if not isinstance(record, dict):
        found = type(record).__name__
        raise _RowError([f"expected one JSON object per line, found a {found}"])
    return record


def _parse_jsonl(
    lines: Sequence[str], source: str, cohort_depth: int
) -> tuple[list[Pair], list[str]]:
    pairs: list[Pair] = []
    errors: list[str] = []
    for number, line in enumerate(lines, start=1):
        if _blank(line):
            continue
        try:
            pairs += record_pairs(_json_record(line), number, cohort_depth)
        except _RowError as exc:
            errors.append(f"{source}:{number}: {exc}")
    return pairs, errors


def parse_pairs(
    text: str, *, source: str, fmt: Format, cohort_depth: int = DEFAULT_COHORT_DEPTH
) -> list[Pair]:
    """The pairs of a file's text, or ``InputError`` listing every malformed row."""
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if all(_blank(line) for line in lines):
        raise InputError([f"{source}: empty file"])
    parse = _parse_tsv if fmt == "tsv" else _parse_jsonl
    pairs, errors = parse(lines, source, cohort_depth)
    if errors:
        raise InputError(errors)
    if not pairs:
        raise InputError([f"{source}: no rows after the header"])
    return pairs


def read_pair_text(path: Path) -> str:
    """The text of a pair file (a UTF-8 BOM dropped), or ``InputError`` saying why not."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError([f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    except OSError as exc:
        raise InputError([f"{path}: cannot read: {exc.strerror or exc}"]) from None


def load_pairs(path: Path, *, cohort_depth: int = DEFAULT_COHORT_DEPTH) -> list[Pair]:
    """The pairs of a TSV or JSONL file, or ``InputError``."""
    text = read_pair_text(path)
    return parse_pairs(
        text, source=str(path), fmt=detect_format(path, text), cohort_depth=cohort_depth
    )


Similarities = Callable[[Sequence[Pair], CacheSettings], Awaitable[tuple[list[float], str]]]
"""(pairs, embedder settings) -> (similarity of each pair, embedder fingerprint):
``embed_similarities``, or a fake in tests."""


async def embed_similarities(
    pairs: Sequence[Pair], settings: CacheSettings | None = None
) -> tuple[list[float], str]:
    """Cosine similarity of each pair under the embedder ``settings`` name (model and
    backend; default the gateway's default) and the embedder's fingerprint. Each distinct
    text is embedded once, through the embedder's public ``embed`` in concurrent chunks of
    ``EMBED_BATCH`` that its micro-batcher runs as one forward pass each."""
    embedded_pairs = [pair for pair in pairs if pair.fixed is None]
    texts = list(dict.fromkeys(t for pair in embedded_pairs for t in (pair.text_a, pair.text_b)))
    embedder = build_embedder(settings or CacheSettings(), max_batch=EMBED_BATCH)
    await embedder.open()
    try:
        vectors: dict[str, Vector] = {}
        for start in range(0, len(texts), EMBED_BATCH):
            chunk = texts[start : start + EMBED_BATCH]
            embedded = await asyncio.gather(*(embedder.embed(text) for text in chunk))
            vectors.update(zip(chunk, embedded, strict=True))
    finally:
        await embedder.close()
    similarities = [
        p.fixed
        if p.fixed is not None
        else min(1.0, max(-1.0, float(vectors[p.text_a] @ vectors[p.text_b])))
        for p in pairs
    ]
    return similarities, embedder.fingerprint
