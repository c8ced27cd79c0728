"""Training a verifier: a CrossEncoder (one logit, sigmoid) from a BERT-like model's
weights, with sentence-transformers' ``CrossEncoderTrainer`` and ``BinaryCrossEntropyLoss``.

Class balance: the positive class is weighted by negatives / positives (``pos_weight``).
Each pair is trained in both orders (the cached prompt may be either). On CPU the run is a
function of its inputs: the seed sets the head's initialization and the data order, there
is one process, a fixed thread count (``torch_threads``) and no dataloader workers, so the
same pairs and seed give the same weights.
torch and the trainer are imported here, inside the functions, so the CLI's ``--help`` and
the gate do not pay for them.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from audit.errors import InputError
from audit.training.hyperparameters import EmbedderHyperparameters, Hyperparameters
from audit.training.records import TrainingPair
from cache.embedder import resolve_model

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder
    from transformers import TrainerCallback


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run torch on ``count`` intra-op threads inside the block (then as before): the
    weights depend on the thread count (the order floats are summed in), and the count a
    process ends up with depends on what ran before, so training sets it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def base_path(hyperparameters: Hyperparameters) -> str:
    """The folder the base weights are read from."""
    return resolve_model(hyperparameters.base)


def load_base(hyperparameters: Hyperparameters) -> CrossEncoder:
    """The base model with a fresh one-label head (seeded), cut to ``layers`` layers."""
    from sentence_transformers import CrossEncoder
    from transformers import set_seed

    set_seed(hyperparameters.seed)
    model: CrossEncoder = CrossEncoder(
        base_path(hyperparameters),
        num_labels=1,
        max_length=hyperparameters.max_length,
        local_files_only=True,
        device="cpu",
    )
    if hyperparameters.layers is not None:
        _truncate(model, hyperparameters.layers)
    return model


def _truncate(model: CrossEncoder, layers: int) -> None:
    """Keep the first ``layers`` encoder layers (BERT-like models: ``encoder.layer``)."""
    from torch import nn

    network = model.model
    try:
        assert network is not None
        encoder = network.base_model.get_submodule("encoder")
        blocks = encoder.get_submodule("layer")
    except (AssertionError, AttributeError):
        raise InputError([f"--layers: {model} has no BERT-like encoder.layer"]) from None
    if isinstance(blocks, nn.ModuleList) and layers < len(blocks):
        encoder.layer = nn.ModuleList(list(blocks)[:layers])
        network.config.num_hidden_layers = layers


def run_arguments(
    hp: Hyperparameters | EmbedderHyperparameters, scratch: str, sampler: object
) -> dict[str, Any]:
    """The training arguments both trainers (the verifier's and the embedder's) run with:
    on CPU, one process, no dataloader workers, the seed on the data order too, nothing
    saved mid-way, the loss said once an epoch (a run is a function of its inputs)."""
    return {
        "output_dir": scratch,
        "num_train_epochs": hp.epochs,
        "per_device_train_batch_size": hp.batch_size,
        "learning_rate": hp.lr,
        "warmup_steps": hp.warmup_ratio,  # a float below 1: a share of the steps (v5)
        "seed": hp.seed,
        "data_seed": hp.seed,
        "save_strategy": "no",
        "logging_strategy": "epoch",
        "report_to": "none",
        "use_cpu": True,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
        "batch_sampler": sampler,
    }


def progress_callback() -> TrainerCallback:
    """A trainer callback saying each epoch's loss on stderr (long runs are not silent)."""
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            logs = kwargs.get("logs") or {}
            if "loss" in logs:
                epochs = f"{state.epoch:.1f}/{args.num_train_epochs:g}"
                print(f"vetcache: train: epoch {epochs} loss {logs['loss']:.4f}", file=sys.stderr)

    return Progress()


def _rows(pairs: Sequence[TrainingPair], both_orders: bool) -> dict[str, list[object]]:
    first: list[object] = []
    second: list[object] = []
    labels: list[object] = []
    for pair in pairs:
        orders = [(pair.text_a, pair.text_b)]
        if both_orders:
            orders.append((pair.text_b, pair.text_a))
        for a, b in orders:
            first.append(a)
            second.append(b)
            labels.append(float(pair.label))
    return {"sentence1": first, "sentence2": second, "label": labels}


def train(model: CrossEncoder, pairs: Sequence[TrainingPair], hp: Hyperparameters) -> None:
    """Fit ``model`` on ``pairs`` in place."""
    import torch
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
    from transformers import PrinterCallback

    from audit.training.batches import LengthGroupedBatchSampler

    positives = sum(pair.label for pair in pairs)
    negatives = len(pairs) - positives
    weight = negatives / positives if positives and negatives else 1.0
    loss = BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(weight))
    with tempfile.TemporaryDirectory(prefix="vetcache-train-") as scratch:
        args = CrossEncoderTrainingArguments(
            **run_arguments(hp, scratch, LengthGroupedBatchSampler)
        )
        trainer = CrossEncoderTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_dict(_rows(pairs, hp.both_orders)),
            loss=loss,
        )
        trainer.remove_callback(PrinterCallback)  # its log dicts went to stdout
        trainer.add_callback(progress_callback())
        trainer.train()
