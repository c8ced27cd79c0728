"""Batches of pairs of similar length, for training.

A pair is as costly as the longest pair of its batch (the batch is padded to it): with
random batches nearly every batch of 32 holds one of the ~12% long pairs (40+ words, up to
~400 tokens), so an epoch cost ~10x what the tokens need. Grouping by length (as the
``transformers`` length-grouped sampler does, which the sentence-transformers trainer does
not use for pair datasets) keeps the cost to the tokens while the order stays random: the
pairs are shuffled, cut into windows of ``WINDOW`` batches, sorted by length within a
window, batched, and the batches shuffled again; every epoch reshuffles from ``seed +
epoch``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from sentence_transformers.base.sampler import DefaultBatchSampler

WINDOW = 16
"""Batches per window sorted by length (larger: tighter batches, less random order)."""


class LengthGroupedBatchSampler(DefaultBatchSampler):
    """Random batches of pairs of similar length (``sentence1`` + ``sentence2`` characters)."""

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        drop_last: bool,
        valid_label_columns: list[str] | None = None,
        generator: torch.Generator | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(
            dataset,
            batch_size=batch_size,
            drop_last=drop_last,
            valid_label_columns=valid_label_columns,
            generator=generator,
            seed=seed,
        )
        firsts, seconds = dataset["sentence1"], dataset["sentence2"]
        self.lengths = [len(a) + len(b) for a, b in zip(firsts, seconds, strict=True)]

    def __len__(self) -> int:
        count = len(self.lengths)
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        size = self.batch_size
        batches: list[list[int]] = []
        for start in range(0, len(order), size * WINDOW):
            window = sorted(order[start : start + size * WINDOW], key=self.lengths.__getitem__)
            batches += [window[i : i + size] for i in range(0, len(window), size)]
        if self.drop_last:
            batches = [batch for batch in batches if len(batch) == size]
        for index in torch.randperm(len(batches), generator=generator).tolist():
            yield batches[index]
