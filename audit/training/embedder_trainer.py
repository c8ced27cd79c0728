"""Fine-tuning the embedding model contrastively, with sentence-transformers'
``SentenceTransformerTrainer``, on the same labelled pairs as the verifier.

Two kinds of loss, chosen by ``EmbedderHyperparameters.loss`` (and by measurement,
docs/performance.md):
- ``mnrl``: MultipleNegativesRankingLoss on (anchor, positive, hard negative) triplets: each
  label-1 pair is an (anchor, positive) in both orders (the cached prompt may be either), its
  hard negative a prompt the labels say the anchor's answer does not serve (``triplets``);
  the other rows of the batch are more negatives, so batches never repeat a text
  (``UniqueLengthGroupedBatchSampler``).
- ``cosent`` / ``online-contrastive``: CoSENTLoss / OnlineContrastiveLoss on the labelled
  pairs themselves (cosine is symmetric: one order).
Reproducible as the verifier's run is (``audit.training.trainer``): one process, fixed
threads, seeded order, no dataloader workers. torch is imported inside the functions.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from audit.training.hyperparameters import EmbedderHyperparameters
from audit.training.records import TrainingPair, normalize
from audit.training.splits import Components
from cache.embedder import resolve_model

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def _answer_groups(pairs: Sequence[TrainingPair]) -> Components:
    """Texts joined by label-1 pairs: one answer serves a whole group."""
    groups = Components()
    for pair in pairs:
        if pair.label == 1:
            groups.union(normalize(pair.text_a), normalize(pair.text_b))
    return groups


def _hard_negatives(pairs: Sequence[TrainingPair]) -> dict[str, list[str]]:
    """Per answer group (its root), the texts a label-0 pair puts against it, in order."""
    groups = _answer_groups(pairs)
    found: dict[str, list[str]] = defaultdict(list)
    for pair in pairs:
        if pair.label == 0:
            found[groups.find(normalize(pair.text_a))].append(pair.text_b)
            found[groups.find(normalize(pair.text_b))].append(pair.text_a)
    return {root: list(dict.fromkeys(texts)) for root, texts in found.items()}


def triplets(pairs: Sequence[TrainingPair]) -> dict[str, list[str]]:
    """MultipleNegativesRankingLoss rows: every label-1 pair in both orders, each with a
    hard negative of its answer group (rotating through the group's negatives); a group
    without one takes a negative of the next group that has some (an easier negative, and
    the batch's other rows still add theirs)."""
    groups = _answer_groups(pairs)
    negatives = _hard_negatives(pairs)
    roots = sorted(negatives)
    used: dict[str, int] = defaultdict(int)
    rows: dict[str, list[str]] = {"anchor": [], "positive": [], "negative": []}
    for pair in pairs:
        if pair.label != 1 or not roots:
            continue
        root = groups.find(normalize(pair.text_a))
        if root not in negatives:
            root = next((r for r in roots if r > root), roots[0])
        for anchor, positive in ((pair.text_a, pair.text_b), (pair.text_b, pair.text_a)):
            choices = negatives[root]
            rows["anchor"].append(anchor)
            rows["positive"].append(positive)
            rows["negative"].append(choices[used[root] % len(choices)])
            used[root] += 1
    return rows


def labelled(pairs: Sequence[TrainingPair]) -> dict[str, list[Any]]:
    """CoSENT / online contrastive rows: the pairs and their labels."""
    return {
        "sentence1": [pair.text_a for pair in pairs],
        "sentence2": [pair.text_b for pair in pairs],
        "label": [float(pair.label) for pair in pairs],
    }


def load_embedder(hp: EmbedderHyperparameters) -> SentenceTransformer:
    """The base sentence-transformers model, reading ``max_length`` tokens."""
    from sentence_transformers import SentenceTransformer
    from transformers import set_seed

    set_seed(hp.seed)
    model = SentenceTransformer(resolve_model(hp.base), device="cpu", local_files_only=True)
    model.max_seq_length = hp.max_length
    return model


def _loss(model: SentenceTransformer, hp: EmbedderHyperparameters) -> Any:
    from sentence_transformers.sentence_transformer import losses

    if hp.loss == "mnrl":
        return losses.MultipleNegativesRankingLoss(model)
    if hp.loss == "cosent":
        return losses.CoSENTLoss(model)
    return losses.OnlineContrastiveLoss(model)


def fine_tune(
    model: SentenceTransformer, pairs: Sequence[TrainingPair], hp: EmbedderHyperparameters
) -> int:
    """Fit ``model`` on ``pairs`` in place; the number of training rows."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer import SentenceTransformerTrainingArguments
    from transformers import PrinterCallback

    from audit.training.batches import (
        LengthGroupedBatchSampler,
        UniqueLengthGroupedBatchSampler,
    )
    from audit.training.trainer import progress_callback, run_arguments

    rows = triplets(pairs) if hp.loss == "mnrl" else labelled(pairs)
    sampler = UniqueLengthGroupedBatchSampler if hp.loss == "mnrl" else LengthGroupedBatchSampler
    with tempfile.TemporaryDirectory(prefix="vetcache-train-embedder-") as scratch:
        args = SentenceTransformerTrainingArguments(**run_arguments(hp, scratch, sampler))
        dataset = Dataset.from_dict(rows)
        trainer = SentenceTransformerTrainer(
            model=model, args=args, train_dataset=dataset, loss=_loss(model, hp)
        )
        trainer.remove_callback(PrinterCallback)
        trainer.add_callback(progress_callback())
        trainer.train()
    return len(dataset)
