"""The demo workloads (``proxy/demo/*.json``) and the labels ``demo --learn`` judges hits by:
the second pass must ask prompts the first never did, of the same kinds and namespaces."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from proxy.demo_labels import (
    FIRST_WORKLOAD,
    PAIR_HEADER,
    SECOND_WORKLOAD,
    Labels,
    load_workload,
    pair_rows,
    prompts,
    write_pairs,
)
from proxy.demo_pass import Tally, _count, served_prompt

FIRST = load_workload(FIRST_WORKLOAD)
SECOND = load_workload(SECOND_WORKLOAD)


def _folded(text: str) -> str:
    return " ".join(text.lower().rstrip("?!. ").split())


def test_second_pass_asks_nothing_the_first_did() -> None:
    first = {_folded(text) for _, text in prompts(FIRST)}
    second = [_folded(text) for _, text in prompts(SECOND)]
    assert not first & set(second)
    assert len(second) == len(set(second))  # and no prompt twice within it


def test_second_pass_covers_the_first_namespaces() -> None:
    assert set(SECOND) == set(FIRST)
    for namespace, groups in SECOND.items():
        assert len(groups) >= len(FIRST[namespace])


@pytest.mark.parametrize("name", [FIRST_WORKLOAD, SECOND_WORKLOAD])
def test_every_group_has_paraphrases_and_traps(name: str) -> None:
    for groups in load_workload(name).values():
        for group in groups:
            assert set(group) == {"ask", "same", "traps"}
            assert len(group["same"]) >= 2 and len(group["traps"]) >= 1
            texts = [group["ask"], *group["same"], *group["traps"]]
            assert all(isinstance(text, str) and text.strip() for text in texts)


def test_second_pass_has_harder_rewordings_and_two_traps_per_group() -> None:
    for groups in SECOND.values():
        for group in groups:
            assert len(group["same"]) >= 3 and len(group["traps"]) >= 2
            # a rewording that shares little with the question (not only a one-word swap)
            asked = set(_folded(group["ask"]).split())
            overlap = min(len(asked & set(_folded(t).split())) / len(asked) for t in group["same"])
            assert overlap < 0.6, group["ask"]


def test_labels_say_which_prompts_share_an_answer() -> None:
    group = SECOND["travel"][0]
    labels = Labels.of(SECOND)
    ask, same, trap = group["ask"], group["same"][0], group["traps"][0]
    assert labels.same_answer(ask, same) and labels.same_answer(same, ask)
    assert labels.same_answer(same, group["same"][1])
    assert labels.same_answer(trap, trap)
    assert not labels.same_answer(ask, trap) and not labels.same_answer(trap, ask)
    assert not labels.same_answer(trap, group["traps"][1])
    assert not labels.same_answer(ask, SECOND["travel"][1]["ask"])
    assert labels.knows(trap) and not labels.knows("something else")


def test_pair_rows_are_a_pair_file_the_gate_reads(tmp_path: Path) -> None:
    path = write_pairs(SECOND, tmp_path / "pairs.tsv")
    header, *rows = [line.split("\t") for line in path.read_text().splitlines()]
    assert header == list(PAIR_HEADER) and len(rows) == len(pair_rows(SECOND))
    labels = Labels.of(SECOND)
    assert all(labels.same_answer(row[5], row[6]) == (row[7] == "1") for row in rows)
    assert {row[2] for row in rows} == set(SECOND) and {row[7] for row in rows} == {"0", "1"}


def _reply(outcome: str, content: str, **headers: str) -> httpx.Response:
    body = {"choices": [{"message": {"role": "assistant", "content": content}}]}
    return httpx.Response(200, json=body, headers={"x-vetcache": outcome, **headers})


def test_a_served_trap_counts_as_a_false_hit() -> None:
    group = SECOND["shop"][0]
    labels, tally = Labels.of(SECOND), Tally()
    answer = f"[fake-gpt] reply 0123abcd: {group['ask']}"
    assert served_prompt(_reply("hit", answer)) == group["ask"]
    _count(tally, "shop", group["same"][0], _reply("hit", answer), labels)
    _count(tally, "shop", group["traps"][0], _reply("hit", answer), labels)
    _count(tally, "shop", group["ask"], _reply("hit", answer), labels)
    _count(
        tally,
        "shop",
        group["traps"][1],
        _reply("miss", "x", **{"x-vetcache-refused": "verifier"}),
        labels,
    )
    counts = tally.counts["shop"]
    assert (counts.requests, counts.hits, counts.exact, counts.semantic, counts.false) == (
        4,
        3,
        1,
        2,
        1,
    )
    assert counts.refused == {"verifier": 1} and counts.fp_share == 0.5
    assert tally.false_hits == [(group["ask"], group["traps"][0])]
