"""Batches of pairs of similar length, for training.

A pair is as costly as the longest pair of its batch (the batch is padded to it): with
random batches nearly every batch of 32 holds one of the ~12% long pairs (40+ words, up to
~400 tokens), so an epoch cost ~10x what the tokens need. Grouping by length (as the
``transformers`` length-grouped sampler does, which the sentence-transformers trainer does
not use for pair datasets) keeps the cost to the tokens while the order stays random: the
pairs are shuffled, cut into windows of ``WINDOW`` batches, sorted by length within a
window, batched, and the batches shuffled again; every epoch reshuffles from ``seed +
epoch``. A row's length is the characters of all its text columns (a verifier's pair, an
embedder's pair or triplet).

``UniqueLengthGroupedBatchSampler`` also keeps a text from appearing twice in a batch, for
losses that take the other rows of a batch as negatives (MultipleNegativesRankingLoss): a
family's prompt in two rows would be its own negative.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from sentence_transformers.base.sampler import DefaultBatchSampler

WINDOW = 16
"""Batches per window sorted by length (larger: tighter batches, less random order)."""


class LengthGroupedBatchSampler(DefaultBatchSampler):
    """Random batches of rows of similar length (characters of their text columns)."""

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
        columns = [dataset[name] for name in text_columns(dataset)]
        self.lengths = [sum(map(len, row)) for row in zip(*columns, strict=True)]
        self.texts: list[tuple[str, ...]] = list(zip(*columns, strict=True))

    def __len__(self) -> int:
        count = len(self.lengths)
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._plan()

    def _plan(self) -> list[list[int]]:
        """This epoch's batches, in order."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        size = self.batch_size
        batches: list[list[int]] = []
        for start in range(0, len(order), size * WINDOW):
            window = sorted(order[start : start + size * WINDOW], key=self.lengths.__getitem__)
            batches += self._batches(window)
        if self.drop_last:
            batches = [batch for batch in batches if len(batch) == size]
        return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]

    def _batches(self, window: list[int]) -> list[list[int]]:
        size = self.batch_size
        return [window[i : i + size] for i in range(0, len(window), size)]


class UniqueLengthGroupedBatchSampler(LengthGroupedBatchSampler):
    """Length-grouped batches in which no text appears twice."""

    def __len__(self) -> int:
        return len(self._plan())  # a batch may close early on a repeated text

    def _batches(self, window: list[int]) -> list[list[int]]:
        """Each row into the first batch of the window that has room and none of its
        texts (a new batch when none has)."""
        batches: list[tuple[list[int], set[str]]] = []
        for row in window:
            texts = set(self.texts[row])
            home = next(
                (b for b in batches if len(b[0]) < self.batch_size and not texts & b[1]), None
            )
            if home is None:
                home = ([], set())
                batches.append(home)
            home[0].append(row)
            home[1].update(texts)
        return [rows for rows, _ in batches]


def text_columns(dataset: Any) -> list[str]:
    """The dataset's columns that hold text (not ``label`` / ``score``)."""
    return [name for name in dataset.column_names if name not in ("label", "score")]
