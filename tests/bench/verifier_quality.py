"""What the learned verifier does to served hits on pairs its training never saw: the FP share
of served semantic hits and the recall of same-answer pairs, per cohort, at the operating
point, against the threshold alone.

    python tests/bench/verifier_quality.py [--model default|DIR] [--floor F] [--bar B]
        [--min-score S] [--pairs FILE...]

Each pair is decided as the gateway decides a semantic candidate: similarity under the
configured embedder (the default: the bundled model, ONNX int8) at or above the floor (the
threshold in force), both prompts in a language the embedder reads (``cache.embedder_languages``:
otherwise refused as ``language``), and, below the bar, the verifier's score (ONNX int8, as
served) at or above its operating point (the card's threshold unless ``--min-score``).

Data, by default: the project's held-out pairs (tests/bench/data/verifier_heldout.tsv, written
before any verifier was trained and never trained or tuned on; pairs sharing a prompt with the
shipped training pairs are left out and counted), and from ``../shared/data`` when present:
fow_cache (all 600 pairs: the default verifier never trains on them) and sts2016_qq (out of
domain: StackExchange titles). Targets (issue 19): FP share <= 5% with recall >= 50% in every
cohort of 20+ pairs; the rows say which cohorts meet them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from audit.pairs import Pair, embed_similarities
from audit.training.files import load_pair_file, shipped_pair_files
from audit.training.metrics import Metrics, Scored, by_cohort, measure, scored
from audit.training.records import TrainingPair, normalize
from audit.training.report import table
from cache.language_check import LanguageCheck
from cache.settings import CacheSettings
from cache.verifier_model import load_scorer
from tests.bench.shared_data import FOW_PAIRS, ROOT, STS_PAIRS

HELD_OUT = ROOT / "tests" / "bench" / "data" / "verifier_heldout.tsv"
MAX_FP, MIN_RECALL, MIN_COHORT = 0.05, 0.5, 20
BASELINE = 0.95
"""The default threshold without a verifier."""


def _unseen(pairs: Sequence[TrainingPair]) -> tuple[list[TrainingPair], int]:
    """``pairs`` without those sharing a prompt with the shipped training pairs."""
    trained = {
        normalize(text)
        for path in shipped_pair_files()
        for pair in load_pair_file(path)
        for text in (pair.text_a, pair.text_b)
    }
    kept = [
        p
        for p in pairs
        if normalize(p.text_a) not in trained and normalize(p.text_b) not in trained
    ]
    return kept, len(pairs) - len(kept)


async def _score(
    pairs: Sequence[TrainingPair], settings: CacheSettings, scorer: object
) -> list[Scored]:
    plain = [Pair(p.text_a, p.text_b, p.label, p.cohorts.kind, 0) for p in pairs]
    sims, _ = await embed_similarities(plain, settings)
    check = LanguageCheck(settings.embedder_languages)
    # A pair in a language the embedder does not read is refused (``language``) whatever its
    # similarity: counted as never served.
    readable = [check.covers(p.text_a) and check.covers(p.text_b) for p in pairs]
    sims = [s if ok else -1.0 for ok, s in zip(readable, sims, strict=True)]
    scores = scorer.scores([(p.text_a, p.text_b) for p in pairs])  # type: ignore[attr-defined]
    return scored(pairs, sims, scores)


def _verdict(m: Metrics) -> str:
    if m.pairs < MIN_COHORT:
        return ""
    fp_ok = m.fp_share is None or m.fp_share <= MAX_FP
    recall_ok = m.recall is None or m.recall >= MIN_RECALL
    return (
        "meets"
        if fp_ok and recall_ok
        else "MISSES "
        + ", ".join([*(["fp"] if not fp_ok else []), *(["recall"] if not recall_ok else [])])
    )


def _report(name: str, items: list[Scored], threshold: float, floor: float, bar: float) -> None:
    print(f"\n## {name}: {len(items)} pairs")
    # The similarity-only rows rank by similarity (their AUC column is the embedder's).
    by_similarity = [i.model_copy(update={"score": i.similarity}) for i in items]
    rows = {
        f"similarity >= {BASELINE} only": measure(by_similarity, 0.0, BASELINE, -1.0),
        f"similarity >= {floor} only": measure(by_similarity, 0.0, floor, -1.0),
        f"floor {floor} + verifier >= {threshold:.4f}": measure(items, threshold, floor, bar),
    }
    print(table(rows))
    cohorts = by_cohort(items, threshold, floor, bar)
    cohorts = {k: v for k, v in cohorts.items() if not k.startswith("source=")}
    print(table(cohorts, {k: _verdict(v) for k, v in cohorts.items() if _verdict(v)}))


def _load(path: Path) -> list[TrainingPair]:
    return load_pair_file(path)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default", help="verifier folder (default: default)")
    parser.add_argument("--floor", type=float, help="similarity floor (default: the card's)")
    parser.add_argument("--bar", type=float, default=1.0)
    parser.add_argument("--min-score", type=float, help="operating point (default: the card's)")
    parser.add_argument("--pairs", type=Path, nargs="+", help="pair files instead of the defaults")
    args = parser.parse_args()
    scorer = load_scorer(args.model)
    floor = float(args.floor if args.floor is not None else scorer.card.get("floor", 0.75))
    threshold = args.min_score if args.min_score is not None else scorer.threshold
    settings = CacheSettings()
    print(
        f"verifier {scorer.fingerprint}; operating point {threshold:.4f}; floor {floor}; "
        f"bar {args.bar}; embedder {settings.embedding_model} {settings.embedding_backend}; "
        f"languages {list(settings.embedder_languages)}"
    )
    sets: list[tuple[str, list[TrainingPair]]] = []
    if args.pairs:
        sets = [(str(path), _load(path)) for path in args.pairs]
    else:
        held_out, dropped = _unseen(_load(HELD_OUT))
        sets.append((f"held-out ({dropped} sharing a prompt with training left out)", held_out))
        for label, path in (("fow_cache (never trained on)", FOW_PAIRS),
                            ("sts2016_qq (out of domain)", STS_PAIRS)):  # fmt: skip
            if path.is_file():
                sets.append((label, _load(path)))
            else:
                print(f"skipped: {path} not found (not shipped with the project)")
    for name, pairs in sets:
        _report(name, await _score(pairs, settings, scorer), threshold, floor, args.bar)


if __name__ == "__main__":
    asyncio.run(main())
