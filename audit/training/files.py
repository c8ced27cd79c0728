"""Training pairs from labelled pair files.

The project's own format is an 8-column TSV (``id family product kind language text_a text_b
label``): every column is kept (family for the splits, the others as cohorts). Any other file
``audit.pairs`` reads (pairs or triplets, TSV or JSONL) is accepted too: its category is the
kind, the language is detected (``cache.language``), the product is ``all``, and its
families are the connected components of shared normalized texts (``splits.merge_families``).
Conversation rows are refused: a verifier reads two prompts, not two conversations.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from audit.errors import InputError
from audit.pairs import load_pairs, read_pair_text
from audit.training.records import Cohorts, Provenance, TrainingPair, length_of
from cache import language

COLUMNS = ("id", "family", "product", "kind", "language", "text_a", "text_b", "label")
"""The header of the project's pair files, in order."""


def load_pair_file(path: Path) -> list[TrainingPair]:
    """The pairs of one file, or ``InputError`` naming every bad row (``FILE:LINE: ...``)."""
    text = read_pair_text(path)
    first = next((line for line in text.splitlines() if line.strip()), "")
    if tuple(column.strip() for column in first.split("\t")) == COLUMNS:
        return _eight_columns(text, str(path))
    return _other_format(path)


def _eight_columns(text: str, source: str) -> list[TrainingPair]:
    pairs: list[TrainingPair] = []
    errors: list[str] = []
    seen_header = False
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        if not seen_header:
            seen_header = True
            continue
        fields = line.split("\t")
        problem = _row_problem(fields)
        if problem:
            errors.append(f"{source}:{number}: {problem}")
            continue
        pairs.append(_row_pair(fields, f"{source}:{number}"))
    if errors:
        raise InputError(errors)
    if not pairs:
        raise InputError([f"{source}: no rows after the header"])
    return pairs


def _row_problem(fields: list[str]) -> str | None:
    if len(fields) != len(COLUMNS):
        return f"expected {len(COLUMNS)} tab-separated fields, found {len(fields)}"
    row = dict(zip(COLUMNS, fields, strict=True))
    empty = [name for name in COLUMNS if not row[name].strip()]
    if empty:
        return f"empty {', '.join(empty)}"
    if row["label"].strip() not in ("0", "1"):
        return f"label must be 0 or 1, found {row['label']!r}"
    return None


def _row_pair(fields: list[str], ref: str) -> TrainingPair:
    row = dict(zip(COLUMNS, (field.strip() for field in fields), strict=True))
    cohorts = Cohorts(
        product=row["product"].lower(),
        kind=row["kind"].lower(),
        language=row["language"].lower(),
        length=length_of(row["text_a"], row["text_b"]),
        source="file",
    )
    return TrainingPair(
        text_a=row["text_a"],
        text_b=row["text_b"],
        label=int(row["label"]),
        family=f"{Path(ref.rsplit(':', 1)[0]).name}:{row['family']}",
        cohorts=cohorts,
        provenance=Provenance(source="file", ref=ref),
    )


def _other_format(path: Path) -> list[TrainingPair]:
    found = load_pairs(path)
    conversations = [f"{path}:{pair.line}" for pair in found if pair.messages is not None]
    if conversations:
        raise InputError(
            [f"{ref}: conversation rows cannot be trained on" for ref in conversations]
        )
    return [
        TrainingPair(
            text_a=pair.text_a,
            text_b=pair.text_b,
            label=pair.label,
            family=f"{path.name}:{pair.line}",
            cohorts=Cohorts(
                kind=pair.cohort,
                language=language.detect(pair.text_b),
                length=length_of(pair.text_a, pair.text_b),
                source="file",
            ),
            provenance=Provenance(source="file", ref=f"{path}:{pair.line}"),
        )
        for pair in found
    ]


def shipped_pair_files() -> list[Path]:
    """The training pairs vetcache ships (``audit/training_pairs/*.tsv``, the project's own
    writing, Apache-2.0): what ``vetcache train --default`` builds the default verifier from."""
    folder = Path(str(resources.files("audit").joinpath("training_pairs")))
    return sorted(folder.glob("*.tsv"))
