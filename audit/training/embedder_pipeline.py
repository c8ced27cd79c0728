"""``vetcache train --embedder`` end to end: pairs -> splits -> the base model measured ->
contrastive fine-tuning on the train split -> the ONNX int8 export the gateway serves ->
both models measured per split and cohort -> the folder and its card.

The folder is built as ``<scratch>/<name>`` beside ``out`` (the fingerprint names the
folder, so the export made here is the one the gateway finds for ``out``) and renamed into
place at the end: a run that fails leaves no model behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from audit.errors import InputError
from audit.pairs import Pair, Similarities
from audit.training.card import counts, data_digest, weights_digest
from audit.training.embedder_card import EmbedderCard, write_embedder_card
from audit.training.embedder_metrics import EmbedderMetrics, by_cohort
from audit.training.hyperparameters import EmbedderHyperparameters
from audit.training.pipeline import check_splits, libraries
from audit.training.records import TrainingPair
from audit.training.splits import split_pairs
from cache.embedder import resolve_model
from cache.onnx_export import default_dir
from cache.settings import CacheSettings

Measured = dict[str, dict[str, EmbedderMetrics]]
"""Per split, per cohort."""


@dataclass(frozen=True)
class EmbedderPlan:
    """What to fine-tune on and how."""

    pairs: Sequence[TrainingPair]
    """Every labelled pair (files and ledger); split here."""
    hyperparameters: EmbedderHyperparameters
    threshold: float
    """Similarity threshold FP share and recall are measured at."""
    onnx_dir: Path | None
    """Where the ONNX exports go (None: the gateway's default folder)."""
    command: list[str]
    name: str = "vetcache-embedder"
    external: Sequence[TrainingPair] = ()
    """``--test-pairs``: measured only, never trained on."""
    held_out: Callable[[TrainingPair], bool] | None = None


async def measure(
    model: str,
    groups: dict[str, list[TrainingPair]],
    plan: EmbedderPlan,
    similarities: Similarities,
) -> tuple[Measured, str]:
    """``model`` as served (ONNX int8) on each group: metrics per cohort, and its
    fingerprint."""
    settings = CacheSettings(
        embedding_model=model,
        embedding_backend="onnx-int8",
        onnx_dir=None if plan.onnx_dir is None else str(plan.onnx_dir),
    )
    everything = [pair for members in groups.values() for pair in members]
    plain = [Pair(p.text_a, p.text_b, p.label, p.cohorts.kind, 0) for p in everything]
    values, fingerprint = await similarities(plain, settings)
    found: Measured = {}
    start = 0
    for name, members in groups.items():
        found[name] = by_cohort(members, values[start : start + len(members)], plan.threshold)
        start += len(members)
    return found, fingerprint


def _fine_tune(plan: EmbedderPlan, train: Sequence[TrainingPair], folder: Path) -> int:
    from audit.training.embedder_trainer import fine_tune, load_embedder
    from audit.training.trainer import torch_threads

    with torch_threads(plan.hyperparameters.threads):
        model = load_embedder(plan.hyperparameters)
        rows = fine_tune(model, train, plan.hyperparameters)
    model.save(str(folder))
    return rows


async def run_embedder_training(
    plan: EmbedderPlan, out: Path, similarities: Similarities
) -> EmbedderCard:
    """Fine-tune, export, measure, and write ``out`` (which must not exist); ``InputError``
    on data that cannot train a model (nothing is written then)."""
    if not plan.pairs:
        raise InputError(["no labelled pairs to train on"])
    hp = plan.hyperparameters
    splits = split_pairs(plan.pairs, seed=hp.seed, held_out=plan.held_out)
    check_splits(splits)
    groups: dict[str, list[TrainingPair]] = {name: list(pairs) for name, pairs in splits.items()}
    if plan.external:
        groups["external"] = list(plan.external)
    base, base_fingerprint = await measure(hp.base, groups, plan, similarities)
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        folder = scratch / out.name
        rows = _fine_tune(plan, splits["train"], folder)
        tuned, fingerprint = await measure(str(folder), groups, plan, similarities)
        card = EmbedderCard(
            name=plan.name,
            version=fingerprint.split(":")[-2],
            fingerprint=fingerprint,
            onnx_dir=str(plan.onnx_dir or default_dir()),
            base_model=hp.base,
            base_digest=weights_digest(Path(resolve_model(hp.base))),
            base_fingerprint=base_fingerprint,
            loss=hp.loss,
            hyperparameters=hp.model_dump(),
            training_rows=rows,
            threshold=plan.threshold,
            data_digest=data_digest(groups),
            counts=counts(groups),
            metrics=tuned,
            base_metrics=base,
            command=plan.command,
            created_at=time.time(),
            libraries=libraries(),
        )
        write_embedder_card(folder, card)
        os.rename(folder, out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return card
