"""Train / validation / test splits by prompt family, stratified by cohort.

A family is the connected component of declared families and shared normalized texts: two
pairs that share a prompt (``Reset my password?`` in both) are one family even when their
files named them differently, so no prompt is trained on and tested on. Families, never
rows, are dealt to splits: iterative stratification (Sechidis et al., 2011) over each
family's (product, kind) cohorts, so a cohort with a few families lands in every split. The
deal is a function of the pairs and the seed alone. Held-out pairs (a source or a product
kept for testing) take their whole family into ``test``.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Literal

from audit.training.records import TrainingPair, normalize

Split = Literal["train", "validation", "test"]
SPLITS: tuple[Split, ...] = ("train", "validation", "test")
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)
"""Share of families in train, validation and test."""


class Components:
    """Union-find over strings (path halving): hand-written, it is a dozen lines and no
    library the project has offers one."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, item: str) -> str:
        self.parent.setdefault(item, item)
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union(self, a: str, b: str) -> None:
        first, second = sorted((self.find(a), self.find(b)))
        self.parent[second] = first


def merge_families(pairs: Sequence[TrainingPair]) -> list[TrainingPair]:
    """``pairs`` with each family replaced by its component's name (the smallest declared
    family of the component)."""
    components = Components()
    for pair in pairs:
        family = f"f\0{pair.family}"
        components.find(family)
        for text in (pair.text_a, pair.text_b):
            components.union(family, f"t\0{normalize(text)}")
    names: dict[str, str] = {}
    for pair in sorted(pairs, key=lambda p: p.family):
        names.setdefault(components.find(f"f\0{pair.family}"), pair.family)
    return [
        pair.model_copy(update={"family": names[components.find(f"f\0{pair.family}")]})
        for pair in pairs
    ]


def _strata(members: Sequence[TrainingPair]) -> set[str]:
    return {f"{p.cohorts.product}/{p.cohorts.kind}" for p in members}


def _deal(
    families: dict[str, list[TrainingPair]], seed: int, fractions: Sequence[float]
) -> dict[str, Split]:
    """Iterative stratification: families with the rarest cohorts first, each to the split
    furthest below its share of those cohorts (then of families overall)."""
    strata = {name: _strata(members) for name, members in families.items()}
    size = Counter(stratum for found in strata.values() for stratum in found)
    order = sorted(families)
    random.Random(seed).shuffle(order)  # noqa: S311 - a reproducible deal, not a secret
    order.sort(key=lambda name: min(size[s] for s in strata[name]))
    dealt: dict[Split, Counter[str]] = {split: Counter() for split in SPLITS}
    counts: Counter[Split] = Counter()
    assignment: dict[str, Split] = {}
    for number, name in enumerate(order, start=1):
        needs = {
            split: (
                sum((share * size[s] - dealt[split][s]) / size[s] for s in strata[name]),
                share * number - counts[split],
            )
            for split, share in zip(SPLITS, fractions, strict=True)
        }
        split = max(SPLITS, key=needs.__getitem__)
        assignment[name] = split
        counts[split] += 1
        dealt[split].update(strata[name])
    return assignment


def split_pairs(
    pairs: Sequence[TrainingPair],
    *,
    seed: int,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    held_out: Callable[[TrainingPair], bool] | None = None,
) -> dict[Split, list[TrainingPair]]:
    """The pairs of each split (families merged first; ``held_out`` pairs' families all in
    ``test``), each split in the input's order."""
    merged = merge_families(pairs)
    families: dict[str, list[TrainingPair]] = defaultdict(list)
    for pair in merged:
        families[pair.family].append(pair)
    forced = {p.family for p in merged if held_out is not None and held_out(p)}
    assignment = _deal(
        {name: members for name, members in families.items() if name not in forced},
        seed,
        [fraction / sum(fractions) for fraction in fractions],
    )
    assignment.update(dict.fromkeys(forced, "test"))
    result: dict[Split, list[TrainingPair]] = {split: [] for split in SPLITS}
    for pair in merged:
        result[assignment[pair.family]].append(pair)
    return result
