"""The demo workloads and what they say about their own prompts (``proxy/demo/*.json``).

A workload maps a namespace to groups ``{"ask", "same", "traps"}``: a question, paraphrases
of it that the answer cached for it serves, and traps that look alike but need another
answer. ``workload.json`` is the demo's (and ``demo --learn``'s first pass);
``workload-learn.json`` holds different prompts of the same kinds for the learning loop's
second pass. ``Labels`` is the ground truth both read: two prompts share an answer when
they are one text or both are the question or paraphrases of one group; everything else
(a trap against its question, a trap against another trap, two groups) does not.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

Workload = dict[str, list[dict[str, Any]]]
"""namespace -> groups (``ask``: str, ``same``: list of str, ``traps``: list of str)."""
FIRST_WORKLOAD = "workload.json"
SECOND_WORKLOAD = "workload-learn.json"
PAIR_HEADER = ("id", "family", "product", "kind", "language", "text_a", "text_b", "label")
"""The columns of the project's pair files (``audit/training_pairs``), which ``vetcache
eval --verifier`` reads."""


def load_workload(name: str = FIRST_WORKLOAD) -> Workload:
    """The workload shipped as ``proxy/demo/<name>``."""
    text = resources.files("proxy").joinpath("demo", name).read_text()
    data: Workload = json.loads(text)
    return data


def prompts(groups: Workload) -> Iterator[tuple[str, str]]:
    """Every (namespace, prompt) of the workload."""
    for namespace, items in groups.items():
        for group in items:
            for text in (group["ask"], *group["same"], *group["traps"]):
                yield namespace, text


@dataclass(frozen=True)
class Labels:
    """Which prompts of a workload share an answer."""

    intent: dict[str, str]
    """Question or paraphrase text -> its group's id."""
    traps: frozenset[str]

    @classmethod
    def of(cls, groups: Workload) -> Labels:
        intent: dict[str, str] = {}
        traps: set[str] = set()
        for namespace, items in groups.items():
            for number, group in enumerate(items):
                for text in (group["ask"], *group["same"]):
                    intent[text] = f"{namespace}/{number}"
                traps.update(group["traps"])
        return cls(intent=intent, traps=frozenset(traps))

    def knows(self, text: str) -> bool:
        return text in self.intent or text in self.traps

    def same_answer(self, cached: str, new: str) -> bool:
        """Whether the answer cached for ``cached`` serves ``new``."""
        if cached == new:
            return True
        group = self.intent.get(cached)
        return group is not None and group == self.intent.get(new)


def pair_rows(groups: Workload) -> list[tuple[str, ...]]:
    """The workload as labelled pairs (its question against each paraphrase and each trap),
    in the project's 8-column form: a gate can score them offline."""
    rows: list[tuple[str, ...]] = []
    for namespace, items in groups.items():
        for number, group in enumerate(items):
            family = f"demo-{namespace}-{number:02d}"
            members = [(text, "paraphrase", "1") for text in group["same"]]
            members += [(text, "trap", "0") for text in group["traps"]]
            for index, (text, kind, label) in enumerate(members):
                rows.append(
                    (f"{family}-{index}", family, namespace, kind, "en", group["ask"], text, label)
                )
    return rows


def write_pairs(groups: Workload, path: Path) -> Path:
    """``pair_rows`` as a TSV file at ``path``."""
    lines = ["\t".join(PAIR_HEADER), *("\t".join(row) for row in pair_rows(groups))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
