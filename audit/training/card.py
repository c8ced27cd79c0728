"""The model card: ``vetcache-verifier.json`` beside the weights ``vetcache train`` saved.

It says what the model is (name, version, weights digest), how it was made (base model and
its digest, seed, hyperparameters, the data's digest, the command line, library versions),
from what (counts per source, split, cohort and label) and how it does (metrics per split
and cohort at its operating point, ``threshold``, chosen on the validation split). The gate
and the hit-path runtime read ``threshold``, ``floor`` and ``embedder`` from it.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from audit.errors import InputError
from audit.training.metrics import Metrics
from audit.training.records import COHORT_FIELDS, TrainingPair

Name = TypeVar("Name", bound=str)
"""A split's name."""
CARD_FILE = "vetcache-verifier.json"
CREATED_BY = "vetcache train"


class Counts(BaseModel):
    """How many pairs, by source, split, cohort and label."""

    source: dict[str, int]
    """Pairs per kind of source (file, ledger, review, feedback), all splits."""
    split: dict[str, int]
    """Pairs per split."""
    cohort: dict[str, dict[str, int]]
    """Per split: pairs per cohort (``product=billing``...)."""
    label: dict[str, dict[str, int]]
    """Per split: pairs per label ("0", "1")."""


class VerifierCard(BaseModel):
    """What a verifier folder holds and how it was made."""

    model_config = ConfigDict(extra="ignore")

    name: str
    """Model name."""
    version: str
    """Model version (by default the first 12 hex digits of the weights' digest)."""
    threshold: float
    """The operating point: the score a candidate needs (chosen on the validation split)."""
    floor: float
    """Similarity floor the operating point was chosen under."""
    embedder: str
    """Fingerprint of the embedder whose similarities the floor is in."""
    target_fp: float
    """FP share of served hits the operating point was chosen for."""
    base_model: str
    """Weights it was trained from."""
    base_digest: str
    """SHA-256 of the base model's weights."""
    weights_digest: str
    """SHA-256 of its own weights."""
    seed: int
    """Seed of splits, initialization and data order."""
    hyperparameters: dict[str, Any]
    """``audit.training.hyperparameters.Hyperparameters`` as used."""
    data_digest: str
    """SHA-256 of the pairs, labels and splits it was trained and measured on."""
    counts: Counts
    """Pairs per source, split, cohort and label."""
    metrics: dict[str, dict[str, Metrics]]
    """Per split (and ``external`` for ``--test-pairs``): metrics per cohort at the
    operating point."""
    command: list[str]
    """The command line that built it (run again on the same inputs: the same weights)."""
    created_by: str = CREATED_BY
    """The tool that wrote it."""
    created_at: float
    """Unix time it was written."""
    libraries: dict[str, str]
    """Versions of Python, torch, transformers, sentence-transformers and vetcache."""


def counts(splits: Mapping[Name, Sequence[TrainingPair]]) -> Counts:
    """The counts of ``splits``."""
    source: Counter[str] = Counter()
    per_cohort: dict[str, dict[str, int]] = {}
    per_label: dict[str, dict[str, int]] = {}
    for name, pairs in splits.items():
        source.update(pair.provenance.source for pair in pairs)
        cohort = Counter(
            f"{field}={pair.cohorts.value(field)}" for pair in pairs for field in COHORT_FIELDS
        )
        per_cohort[name] = dict(sorted(cohort.items()))
        per_label[name] = dict(sorted(Counter(str(pair.label) for pair in pairs).items()))
    return Counts(
        source=dict(sorted(source.items())),
        split={name: len(pairs) for name, pairs in splits.items()},
        cohort=per_cohort,
        label=per_label,
    )


def data_digest(splits: Mapping[Name, Sequence[TrainingPair]]) -> str:
    """SHA-256 over every pair's split, texts, label and family, in a fixed order."""
    digest = hashlib.sha256()
    rows = sorted(
        json.dumps([name, p.text_a, p.text_b, p.label, p.family], ensure_ascii=False)
        for name, pairs in splits.items()
        for p in pairs
    )
    for row in rows:
        digest.update(row.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def weights_digest(folder: Path) -> str:
    """SHA-256 of a model folder's weights files (``*.safetensors``, else ``*.bin``)."""
    digest = hashlib.sha256()
    for weights in sorted(folder.rglob("*.safetensors")) or sorted(folder.rglob("*.bin")):
        with weights.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def write_card(folder: Path, card: VerifierCard) -> None:
    """Write ``card`` into ``folder``."""
    (folder / CARD_FILE).write_text(card.model_dump_json(indent=2) + "\n", encoding="utf-8")


def read_card(folder: Path) -> VerifierCard:
    """The card of a verifier folder, or ``InputError`` saying why it cannot be read."""
    path = folder / CARD_FILE
    try:
        return VerifierCard.model_validate_json(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise InputError([f"{path}: not a verifier card: {problems}"]) from None
