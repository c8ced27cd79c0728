"""Splits by family, stratified by cohort, deterministic from the seed; the operating point
and the metrics it is judged by; the model card's counts and digest."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from audit.errors import InputError
from audit.training.card import counts, data_digest, read_card
from audit.training.metrics import Scored, auc, by_cohort, measure, operating_point
from audit.training.records import Cohorts, Provenance, SourceKind, TrainingPair
from audit.training.splits import merge_families, split_pairs


def pair(
    a: str, b: str, label: int = 1, family: str = "", product: str = "p", kind: str = "k",
    source: SourceKind = "file",
) -> TrainingPair:  # fmt: skip
    return TrainingPair(
        text_a=a, text_b=b, label=label, family=family or a,
        cohorts=Cohorts(product=product, kind=kind, source=source),
        provenance=Provenance(source=source, ref="x"),
    )  # fmt: skip


def corpus() -> list[TrainingPair]:
    """60 families over 3 products x 2 kinds, 4 pairs each (2 positives, 2 traps)."""
    pairs = []
    for number, (product, kind) in enumerate(
        itertools.product(["billing", "shipping", "travel"], ["negation", "number"])
    ):
        for index in range(10):
            family = f"{product}-{kind}-{index}"
            base = f"question {number} {index}"
            pairs += [
                pair(base, f"{base} please", 1, family, product, kind),
                pair(base, f"{base} thanks", 1, family, product, kind),
                pair(base, f"not {base}", 0, family, product, kind),
                pair(base, f"{base} twice", 0, family, product, kind),
            ]
    return pairs


def families_of(pairs: list[TrainingPair]) -> set[str]:
    return {p.family for p in pairs}


def test_no_family_lands_in_two_splits_and_every_cohort_reaches_every_split() -> None:
    splits = split_pairs(corpus(), seed=7)
    train, validation, test = splits["train"], splits["validation"], splits["test"]
    assert not families_of(train) & families_of(validation)
    assert not families_of(train) & families_of(test)
    assert not families_of(validation) & families_of(test)
    assert len(train) + len(validation) + len(test) == 240
    for found in splits.values():
        assert {(p.cohorts.product, p.cohorts.kind) for p in found} == set(
            itertools.product(["billing", "shipping", "travel"], ["negation", "number"])
        )
    assert 0.6 < len(train) / 240 < 0.8


def test_the_deal_is_a_function_of_the_pairs_and_the_seed() -> None:
    def deal(seed: int) -> list[list[str]]:
        return [sorted(families_of(part)) for part in split_pairs(corpus(), seed=seed).values()]

    assert deal(7) == deal(7)
    assert deal(7) != deal(8)


def test_families_sharing_a_prompt_are_one_family() -> None:
    merged = merge_families(
        [pair("Reset my password?", "x", family="a"), pair("reset my  password", "y", family="b"),
         pair("Other", "z", family="c")]
    )  # fmt: skip
    assert [p.family for p in merged] == ["a", "a", "c"]


def test_held_out_sources_take_their_families_into_test() -> None:
    pairs = [*corpus(), pair("question 0 1", "from the ledger", 0, "ledger:1", source="ledger")]
    splits = split_pairs(pairs, seed=7, held_out=lambda p: p.provenance.source == "ledger")
    assert all(p.family != "billing-negation-1" for p in splits["train"] + splits["validation"])
    assert any(p.provenance.source == "ledger" for p in splits["test"])


# --- metrics and the operating point ---------------------------------------------------------


def item(label: int, score: float, similarity: float = 0.9, kind: str = "k") -> Scored:
    return Scored(label=label, similarity=similarity, score=score, cohorts={"kind": kind})


def test_the_operating_point_is_the_lowest_threshold_meeting_the_target() -> None:
    items = [item(1, 0.9), item(1, 0.8), item(0, 0.7), item(1, 0.6), item(0, 0.5)]
    assert operating_point(items, 0.0, floor=0.5) == 0.8
    assert operating_point(items, 0.34, floor=0.5) == 0.6
    assert operating_point(items, 0.5, floor=0.5) == 0.5
    assert operating_point([item(0, 0.9)], 0.03, floor=0.5) is None


def test_pairs_under_the_floor_are_never_served() -> None:
    items = [item(1, 0.9), item(0, 0.99, similarity=0.4), item(1, 0.95, similarity=0.4)]
    assert operating_point(items, 0.0, floor=0.5) == 0.9
    measured = measure(items, 0.9, floor=0.5, bar=1.0)
    assert (measured.served, measured.false_positives, measured.recall) == (1, 0, 0.5)


def test_the_bar_serves_without_the_verifier() -> None:
    measured = measure([item(0, 0.1, similarity=0.99), item(1, 0.1)], 0.5, floor=0.5, bar=0.98)
    assert (measured.served, measured.fp_share, measured.trap_pass) == (1, 1.0, 1.0)


def test_auc_counts_ties_half() -> None:
    assert auc([item(1, 0.9), item(0, 0.1)]) == 1.0
    assert auc([item(1, 0.1), item(0, 0.9)]) == 0.0
    assert auc([item(1, 0.5), item(0, 0.5), item(1, 0.7), item(0, 0.2)]) == 0.875
    assert auc([item(1, 0.5)]) is None


def test_metrics_come_per_cohort_and_overall() -> None:
    found = by_cohort([item(1, 0.9, kind="a"), item(0, 0.9, kind="b")], 0.5, 0.0, 1.0)
    assert set(found) == {"all", "kind=a", "kind=b"}
    assert found["kind=b"].trap_pass == 1.0 and found["all"].fp_share == 0.5


# --- the card -------------------------------------------------------------------------------


def test_counts_and_the_data_digest() -> None:
    splits = split_pairs(corpus(), seed=7)
    found = counts(splits)
    assert found.source == {"file": 240}
    assert sum(found.split.values()) == 240
    assert found.cohort["test"]["product=billing"] > 0
    assert found.label["train"]["0"] == found.label["train"]["1"]
    assert data_digest(splits) == data_digest(split_pairs(corpus(), seed=7))
    assert data_digest(splits) != data_digest(split_pairs(corpus(), seed=8))


def test_a_folder_without_a_card_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        read_card(tmp_path)
    (tmp_path / "vetcache-verifier.json").write_text('{"name": "x"}')
    with pytest.raises(InputError, match="not a verifier card"):
        read_card(tmp_path)
