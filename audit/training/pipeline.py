"""``vetcache train`` end to end: pairs -> splits -> similarities -> training -> operating
point on the validation split -> metrics per split and cohort -> the folder and its card.

The folder is built in a temporary sibling and renamed into place at the end: a run that
fails leaves nothing behind.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from audit.errors import InputError
from audit.pairs import Pair, Similarities
from audit.training.card import (
    VerifierCard,
    counts,
    data_digest,
    weights_digest,
    write_card,
)
from audit.training.hyperparameters import Hyperparameters
from audit.training.metrics import Metrics, Scored, by_cohort, operating_point, scored
from audit.training.records import TrainingPair, normalize
from audit.training.scorer import load_onnx_scorer
from audit.training.splits import DEFAULT_FRACTIONS, Split, split_pairs
from audit.training.trainer import base_path, load_base, torch_threads, train
from cache.settings import CacheSettings

LIBRARIES = ("torch", "transformers", "sentence-transformers", "vetcache")


@dataclass(frozen=True)
class TrainPlan:
    """What to train on and how."""

    pairs: Sequence[TrainingPair]
    """Every labelled pair (files and ledger); split here."""
    hyperparameters: Hyperparameters
    target_fp: float
    floor: float
    embedder: CacheSettings
    """The embedder the floor is measured with (the gateway's)."""
    command: list[str]
    name: str = "vetcache-verifier"
    external: Sequence[TrainingPair] = ()
    """``--test-pairs``: scored only, never trained or tuned on."""
    held_out: Callable[[TrainingPair], bool] | None = None
    fractions: Sequence[float] = field(default=DEFAULT_FRACTIONS)


@dataclass(frozen=True)
class Outcome:
    card: VerifierCard
    met_target: bool
    """False when no threshold met the target FP share on validation (threshold 1.0)."""
    external_overlap: int = 0
    """``--test-pairs`` pairs sharing a prompt with the training split (not held out)."""


def check_splits(splits: dict[Split, list[TrainingPair]]) -> None:
    """``InputError`` unless both labels reach the train and validation splits."""
    problems = [
        f"the {name} split has no pairs labelled {label}"
        for name in ("train", "validation")
        for label in (0, 1)
        if not any(pair.label == label for pair in splits[name])
    ]
    if problems:
        raise InputError([*problems, "add pairs (or families) so both labels reach each split"])


def _as_pairs(pairs: Sequence[TrainingPair]) -> list[Pair]:
    return [Pair(p.text_a, p.text_b, p.label, p.cohorts.kind, 0) for p in pairs]


def libraries() -> dict[str, str]:
    """Versions of Python and the libraries a model depends on."""
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


async def _similarities(
    plan: TrainPlan, groups: dict[str, list[TrainingPair]], similarities: Similarities
) -> tuple[dict[str, list[float]], str]:
    everything = [pair for members in groups.values() for pair in members]
    values, fingerprint = await similarities(_as_pairs(everything), plan.embedder)
    found: dict[str, list[float]] = {}
    start = 0
    for name, members in groups.items():
        found[name] = values[start : start + len(members)]
        start += len(members)
    return found, fingerprint


async def run_training(plan: TrainPlan, out: Path, similarities: Similarities) -> Outcome:
    """Train, measure, and write ``out`` (which must not exist); ``InputError`` on data
    that cannot train a model (nothing is written then)."""
    if not plan.pairs:
        raise InputError(["no labelled pairs to train on"])
    splits = split_pairs(plan.pairs, seed=plan.hyperparameters.seed, held_out=plan.held_out)
    check_splits(splits)
    groups: dict[str, list[TrainingPair]] = {name: list(pairs) for name, pairs in splits.items()}
    if plan.external:
        groups["external"] = list(plan.external)
    sims, fingerprint = await _similarities(plan, groups, similarities)
    with torch_threads(plan.hyperparameters.threads):
        model = load_base(plan.hyperparameters)
        train(model, splits["train"], plan.hyperparameters)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        model.save(str(scratch))
        # Measured as it serves: the operating point sits where scores crowd near 1, and the
        # int8 model's scores differ from torch's by up to ~0.02 (cache.verifier_model).
        write_card(scratch, _card(plan, groups, {}, 1.0, fingerprint, scratch))
        scorer = load_onnx_scorer(scratch)
        items: dict[str, list[Scored]] = {
            name: scored(
                members, sims[name], scorer.scores([(p.text_a, p.text_b) for p in members])
            )
            for name, members in groups.items()
        }
        chosen = operating_point(items["validation"], plan.target_fp, plan.floor)
        threshold = 1.0 if chosen is None else chosen
        metrics = {
            name: by_cohort(found, threshold, plan.floor, 1.0) for name, found in items.items()
        }
        card = _card(plan, groups, metrics, threshold, fingerprint, scratch)
        write_card(scratch, card)
        os.rename(scratch, out)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    trained = {normalize(t) for p in splits["train"] for t in (p.text_a, p.text_b)}
    overlap = sum(
        1 for p in plan.external if normalize(p.text_a) in trained or normalize(p.text_b) in trained
    )
    return Outcome(card=card, met_target=chosen is not None, external_overlap=overlap)


def _card(
    plan: TrainPlan,
    groups: dict[str, list[TrainingPair]],
    metrics: dict[str, dict[str, Metrics]],
    threshold: float,
    embedder: str,
    folder: Path,
) -> VerifierCard:
    weights = weights_digest(folder)
    return VerifierCard(
        name=plan.name,
        version=weights[:12],
        threshold=threshold,
        floor=plan.floor,
        embedder=embedder,
        target_fp=plan.target_fp,
        base_model=plan.hyperparameters.base,
        base_digest=weights_digest(Path(base_path(plan.hyperparameters))),
        weights_digest=weights,
        seed=plan.hyperparameters.seed,
        hyperparameters=plan.hyperparameters.model_dump(),
        data_digest=data_digest(groups),
        counts=counts(groups),
        metrics=metrics,
        command=plan.command,
        created_at=time.time(),
        libraries=libraries(),
    )
