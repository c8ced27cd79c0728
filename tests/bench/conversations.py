"""Conversation pairs under each context policy: how many valid pairs are served, how many traps.

Reads the fow_cache conversation pairs (``../shared/data/fow_cache/conversations/*/*.jsonl``:
120 pairs where one cached answer serves both requests, 120 traps whose last user message is
the same but whose history changes the answer), keys both requests of each pair the way the
gateway does under a context policy (``audit.conversations``, the code ``vetcache eval``
runs: different scopes never meet, exact repeats hit at any threshold), embeds the compared
texts with the bundled model on the gateway's default backend (ONNX int8), and prints
valid-served vs traps-served per policy and threshold.

The ``standalone`` word lists were written while reading these pairs, so its numbers are
in-sample. The hold-out table re-runs it family by family (billing, retail, services): the
lists are cut to the words that occur in the other two families' messages, and the held-out
family is scored with them (out of sample for the lists).

Embeddings are cached under ``.cache/bench/`` (per embedder fingerprint). Without the pairs
it says so in one line and exits 0.

    .venv/bin/python tests/bench/conversations.py [--thresholds 0.85,0.90,0.95]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from audit.conversations import EXACT, NEVER, apply_policy, keyed
from audit.pairs import Pair, load_pairs
from cache import CacheSettings, build_embedder
from cache.embedder import Vector
from cache.schema import ContextPolicy
from cache.standalone import CONTINUING, POINTING, is_standalone
from tests.bench.shared_data import ROOT, SHARED_DATA, require

CONVERSATIONS = SHARED_DATA / "fow_cache" / "conversations"
CACHE_DIR = ROOT / ".cache" / "bench"
POLICIES: list[tuple[str, ContextPolicy, int]] = [
    ("last_user", "last_user", 2),
    ("last_turns=2", "last_turns", 2),
    ("full", "full", 2),
    ("standalone", "standalone", 2),
]
Family = tuple[str, Pair]
"""(prompt family: the domain file's name, the pair)."""


def load() -> list[Family]:
    files = sorted(CONVERSATIONS.glob("*/*.jsonl"))
    if not files:
        require(CONVERSATIONS / "conv-parts" / "billing.jsonl")
    return [(path.stem, pair) for path in files for pair in load_pairs(path, cohort_depth=0)]


class Vectors:
    """Embeddings of texts, cached on disk per embedder fingerprint."""

    def __init__(self) -> None:
        self.vectors: dict[str, Vector] = {}

    @staticmethod
    def _hash(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    async def load(self, texts: Sequence[str]) -> None:
        embedder = build_embedder(CacheSettings(), max_batch=64)
        await embedder.open()
        try:
            name = hashlib.sha256(embedder.fingerprint.encode()).hexdigest()[:16]
            path = CACHE_DIR / f"conversations-{name}.npz"
            stored = dict(np.load(path)) if path.exists() else {}
            wanted = list(dict.fromkeys(texts))
            missing = [t for t in wanted if self._hash(t) not in stored]
            for start in range(0, len(missing), 64):
                chunk = missing[start : start + 64]
                vectors = await asyncio.gather(*(embedder.embed(t) for t in chunk))
                stored.update({self._hash(t): v for t, v in zip(chunk, vectors, strict=True)})
            if missing:
                CACHE_DIR.mkdir(parents=True, exist_ok=True)
                np.savez(path, **stored)
        finally:
            await embedder.close()
        self.vectors.update({t: stored[self._hash(t)] for t in wanted})

    def similarity(self, pair: Pair) -> float:
        if pair.fixed is not None:
            return pair.fixed
        return float(self.vectors[pair.text_a] @ self.vectors[pair.text_b])


def counts(pairs: Sequence[Pair], vectors: Vectors, threshold: float) -> tuple[int, int]:
    """(valid pairs served, traps served) at ``threshold``."""
    served = [p for p in pairs if vectors.similarity(p) >= threshold]
    valid = sum(1 for p in served if p.label == 1)
    return valid, len(served) - valid


def table(rows: dict[str, list[Pair]], vectors: Vectors, thresholds: Sequence[float]) -> None:
    head = "".join(f"{f'@{t:.2f} valid/traps':>20}" for t in thresholds)
    print(f"{'':<28}{head}")
    for name, pairs in rows.items():
        cells = "".join(f"{'{}/{}'.format(*counts(pairs, vectors, t)):>20}" for t in thresholds)
        print(f"{name:<28}{cells}")


_WORD = re.compile(r"[a-z0-9']+")


def words_of(pairs: Sequence[Pair]) -> tuple[set[str], set[str]]:
    """(every word of the user messages, every word that opens a last user message)."""
    seen: set[str] = set()
    openers: set[str] = set()
    for pair in pairs:
        assert pair.messages is not None
        for messages in pair.messages:
            for message in messages:
                if message.get("role") == "user":
                    seen.update(_WORD.findall(str(message.get("content")).lower()))
            opening = _WORD.findall(str(messages[-1].get("content")).lower())[:1]
            openers.update(opening)
    return seen, openers


def fold_policy(dev: Sequence[Pair]) -> Callable[[Pair], Pair]:
    """The ``standalone`` policy with word lists cut to what ``dev`` could have taught."""
    seen, openers = words_of(dev)
    pointing, continuing = POINTING & seen, CONTINUING & openers

    def key(pair: Pair) -> Pair:
        assert pair.messages is not None
        lasts = [str(messages[-1].get("content")) for messages in pair.messages]
        alone = [is_standalone(t, pointing=pointing, continuing=continuing) for t in lasts]
        if alone[0] != alone[1]:
            return dataclasses.replace(pair, fixed=NEVER)
        if not alone[0]:
            return keyed(pair, "last_user")
        fixed = EXACT if lasts[0] == lasts[1] else None
        return dataclasses.replace(pair, text_a=lasts[0], text_b=lasts[1], fixed=fixed)

    return key


def holdout(
    data: Sequence[Family],
    vectors_for: Callable[[list[Pair]], Vectors],
    thresholds: Sequence[float],
) -> None:
    families = sorted({family for family, _ in data})
    rows: dict[str, list[Pair]] = {}
    for held in families:
        dev = [pair for family, pair in data if family != held]
        test = [pair for family, pair in data if family == held]
        rows[f"{held} in sample"] = apply_policy(test, "standalone")
        rows[f"{held} out of sample"] = [fold_policy(dev)(pair) for pair in test]
    rows["all in sample"] = [p for name, ps in rows.items() if "in sample" in name for p in ps]
    rows["all out of sample"] = [
        p for name, ps in rows.items() if name.endswith(" out of sample") for p in ps
    ]
    print("\nstandalone by held-out family (word lists cut to the other families' words)")
    table(rows, vectors_for([p for ps in rows.values() for p in ps]), thresholds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--thresholds", default="0.85,0.90,0.95", help="comma-separated")
    args = parser.parse_args()
    thresholds = [float(t) for t in args.thresholds.split(",")]
    data = load()
    pairs = [pair for _, pair in data]
    keyed_by = {name: apply_policy(pairs, policy, n) for name, policy, n in POLICIES}
    vectors = Vectors()

    def vectors_for(some: list[Pair]) -> Vectors:
        texts = [t for p in some if p.fixed is None for t in (p.text_a, p.text_b)]
        asyncio.run(vectors.load(texts))
        return vectors

    vectors_for([p for ps in keyed_by.values() for p in ps])
    valid = sum(p.label for p in pairs)
    print(f"{len(pairs)} conversation pairs: {valid} valid, {len(pairs) - valid} traps")
    table(keyed_by, vectors, thresholds)
    holdout(data, vectors_for, thresholds)


if __name__ == "__main__":
    main()
