"""Judge quality on the fow_cache pairs: how well each offline judge spots wrong hits.

``text_a`` plays the cached prompt, ``text_b`` the new one, label 0 = the cached answer does
not serve the new prompt. For each judge that runs offline here (``contrast``; the ``llm``
judge needs a model this machine does not have), prints: agreement with the labels, precision
and recall of its ``false_positive`` verdicts on label-0 pairs, the share of label-1 pairs it
flags, the catch rate per trap category, and time per verdict. Similarities come from the
bundled embedding model, as the gateway would report them.

Caveat printed with the numbers: the contrast word lists were grown while reading this set,
so these are in-sample numbers, an upper bound for unseen traffic. Out of sample, it then
prints the rules' catch rate (label-0 pairs flagged) and flag rate (label-1 pairs flagged) on
sts2016_qq (real question titles) and PAWS (Wikipedia statements); a rule's flag does not
depend on similarity, so these need no embedding model. A missing set is skipped.

The pairs (``../shared/data/fow_cache/pairs.tsv``) are not shipped with the project: without
them it says so in one line and exits 0.

    .venv/bin/python tests/bench/judge_quality.py
"""

from __future__ import annotations

import asyncio
import csv
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from audit.judges.contrast import ContrastJudge
from audit.schema import AuditJob
from cache.embedder import SentenceTransformerEmbedder
from tests.bench.shared_data import FOW_PAIRS, PAWS_PAIRS, STS_PAIRS, require

TARGET = ("negation", "number_date", "entity_swap")


async def similarities(rows: list[dict[str, str]]) -> list[float]:
    embedder = SentenceTransformerEmbedder()
    await embedder.open()
    try:
        vectors_a = embedder._encode([r["text_a"] for r in rows])
        vectors_b = embedder._encode([r["text_b"] for r in rows])
    finally:
        await embedder.close()
    return [min(1.0, float(a @ b)) for a, b in zip(vectors_a, vectors_b, strict=True)]


def read_pairs(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def out_of_sample(name: str, path: Path) -> None:
    """Catch rate on label-0 pairs and flag rate on label-1 pairs of the rules alone."""
    if not path.is_file():
        print(f"  {name}: skipped ({path.name} not found)")
        return
    rows = read_pairs(path)
    judge = ContrastJudge()
    flagged = [
        judge.decide(r["text_a"], r["text_b"], 1.0).verdict == "false_positive" for r in rows
    ]
    traps = [f for f, r in zip(flagged, rows, strict=True) if r["label"] == "0"]
    valid = [f for f, r in zip(flagged, rows, strict=True) if r["label"] == "1"]
    print(f"  {name} ({len(rows)} pairs): traps caught {sum(traps)}/{len(traps)} = "
          f"{sum(traps) / len(traps):.1%}; valid pairs flagged {sum(valid)}/{len(valid)} = "
          f"{sum(valid) / len(valid):.1%}")  # fmt: skip


async def main() -> None:
    rows = read_pairs(require(FOW_PAIRS))
    sims = await similarities(rows)
    judge = ContrastJudge()
    verdicts = []
    started = time.perf_counter()
    for row, similarity in zip(rows, sims, strict=True):
        job = AuditJob(
            job_id=row["id"], request_id=row["id"], entry_id=row["id"], new_prompt=row["text_b"],
            cached_prompt=row["text_a"], cached_answer="", similarity=similarity, threshold=0.95,
            namespace="fow", model="m",
        )  # fmt: skip
        verdicts.append((await judge.judge(job)).verdict)
    per_verdict_us = (time.perf_counter() - started) / len(rows) * 1e6

    flagged = [v == "false_positive" for v in verdicts]
    negatives = [r["label"] == "0" for r in rows]
    true_flags = sum(f and n for f, n in zip(flagged, negatives, strict=True))
    decided = [(v, r) for v, r in zip(verdicts, rows, strict=True) if v != "uncertain"]
    agree = sum((v == "false_positive") == (r["label"] == "0") for v, r in decided)
    by_category: dict[str, list[bool]] = defaultdict(list)
    for flag, row in zip(flagged, rows, strict=True):
        by_category[row["category"].split("/")[0]].append(flag)
    target = [
        f for f, r in zip(flagged, rows, strict=True) if r["category"].split("/")[0] in TARGET
    ]
    label_one_flags = sum(f and not n for f, n in zip(flagged, negatives, strict=True))

    print(f"judge {judge.name} on {len(rows)} fow_cache pairs ({sum(negatives)} label 0)")
    print(f"  agreement with labels (decided verdicts): {agree}/{len(decided)} = {agree / len(decided):.1%}"
          f"; uncertain {len(rows) - len(decided)}")  # fmt: skip
    print(f"  false_positive verdicts: precision {true_flags / max(1, sum(flagged)):.1%}, "
          f"recall on label-0 pairs {true_flags / sum(negatives):.1%}")  # fmt: skip
    print(f"  negation + number/date + entity-swap traps caught: {sum(target)}/{len(target)} = "
          f"{sum(target) / len(target):.1%} (target >= 70%)")  # fmt: skip
    print(f"  label-1 pairs flagged: {label_one_flags}/{len(rows) - sum(negatives)} = "
          f"{label_one_flags / (len(rows) - sum(negatives)):.1%} (target <= 10%)")  # fmt: skip
    print("  caught per category: " + ", ".join(
        f"{k} {sum(v)}/{len(v)}" for k, v in sorted(by_category.items())))  # fmt: skip
    print(f"  time per verdict: {per_verdict_us:.0f} us")
    print("  caveat: the word lists were grown while reading this set; in-sample numbers.")
    print("out of sample (the rules alone; label 0 = trap, label 1 = valid):")
    out_of_sample("sts2016_qq", STS_PAIRS)
    out_of_sample("paws_wiki", PAWS_PAIRS)


if __name__ == "__main__":
    asyncio.run(main())
