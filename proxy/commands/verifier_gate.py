"""``vetcache eval --verifier DIR``: the release gate for a verifier (``audit.training.gate``).

    vetcache eval --verifier DIR --pairs FILE [--against DIR] [--max-fp 0.05]
                  [--min-recall 0.5] [--min-cohort 20] [--tolerance 0.02]
                  [--floor F] [--bar B] [--model M] [--backend B] [--format text|json]

The pairs (the project's 8-column TSV, or any file ``audit.pairs`` reads) are embedded with
``--model``/``--backend`` (the floor and bar are similarities under it), scored by each
verifier, and served at each one's own operating point (its card's threshold). Exit status:
0 the candidate passes; 1 it is refused (each failing cohort named with why); 2 bad input,
a verifier that cannot be loaded, or bad usage.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from audit.errors import InputError
from audit.pairs import Pair, Similarities
from audit.training.card import read_card
from audit.training.files import load_pair_file
from audit.training.gate import GateLimits, GateResult, check
from audit.training.metrics import Metrics, by_cohort, scored
from audit.training.records import TrainingPair
from audit.training.report import table
from audit.training.scorer import Scorer, load_onnx_scorer
from cache.errors import EmbedderError
from cache.settings import CacheSettings

LoadScorer = Callable[[Path], Scorer]
"""A verifier folder -> its scorer (default: the ONNX int8 model the hit path runs)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The gate's options, in their own group of ``vetcache eval``'s."""
    limits = GateLimits()
    group = parser.add_argument_group("release gates (with --verifier, or --against)")
    group.add_argument("--verifier", type=Path, metavar="DIR", help="candidate verifier folder")
    group.add_argument(
        "--against", metavar="M",
        help="the model in force: its verifier folder (with --verifier), else the embedding "
        "model (name or folder) --model must not regress against",
    )  # fmt: skip
    group.add_argument("--max-fp", type=float, default=limits.max_fp, help="highest FP share")
    group.add_argument("--min-recall", type=float, default=limits.min_recall, help="lowest recall")
    group.add_argument(
        "--min-cohort",
        type=int,
        default=limits.min_cohort,
        help="pairs a gated cohort needs (both gates)",
    )
    group.add_argument(
        "--tolerance",
        type=float,
        default=limits.tolerance,
        help="how much worse than --against a gated cohort may get (both gates)",
    )
    group.add_argument("--floor", type=float, help="similarity floor (default: the card's)")
    group.add_argument(
        "--bar", type=float, default=1.0, help="similarity served without the verifier"
    )


def _metrics(
    pairs: Sequence[TrainingPair],
    sims: Sequence[float],
    folder: Path,
    floor: float | None,
    bar: float,
    load: LoadScorer,
) -> tuple[dict[str, Metrics], float, float]:
    card = read_card(folder)
    scorer = load(folder)
    scores = scorer.scores([(pair.text_a, pair.text_b) for pair in pairs])
    floor = card.floor if floor is None else floor
    return by_cohort(scored(pairs, sims, scores), card.threshold, floor, bar), card.threshold, floor


def _render(args: argparse.Namespace, metrics: dict[str, Metrics], result: GateResult) -> str:
    if args.format == "json":
        document = {
            "verifier": str(args.verifier),
            "against": None if args.against is None else str(args.against),
            "passed": result.passed,
            "gated": result.gated,
            "failures": result.failures,
            "cohorts": {name: m.model_dump() for name, m in metrics.items()},
        }
        return json.dumps(document, indent=2) + "\n"
    return f"{table(metrics, result.notes())}\n{result.verdict}\n"


async def run_gate(
    args: argparse.Namespace,
    *,
    similarities: Similarities,
    out: TextIO,
    err: TextIO,
    load: LoadScorer = load_onnx_scorer,
) -> int:
    """Score the candidate (and the model in force), gate, print; the exit status."""
    limits = GateLimits(
        max_fp=args.max_fp,
        min_recall=args.min_recall,
        min_cohort=args.min_cohort,
        tolerance=args.tolerance,
    )
    try:
        pairs = load_pair_file(args.pairs)
        plain = [Pair(p.text_a, p.text_b, p.label, p.cohorts.kind, 0) for p in pairs]
        embedder = CacheSettings(embedding_model=args.model, embedding_backend=args.backend)
        sims, fingerprint = await similarities(plain, embedder)
        metrics, threshold, floor = _metrics(pairs, sims, args.verifier, args.floor, args.bar, load)
        in_force = None
        if args.against is not None:
            against = Path(args.against)
            in_force, _, _ = _metrics(pairs, sims, against, floor, args.bar, load)
    except (InputError, EmbedderError) as exc:
        problems = exc.errors if isinstance(exc, InputError) else [str(exc)]
        for line in problems[:20]:
            print(f"vetcache: eval: {line}", file=err)
        return 2
    result = check(metrics, limits, in_force)
    if args.format == "text":
        out.write(
            f"vetcache eval --verifier {args.verifier}: {len(pairs)} pairs from {args.pairs}; "
            f"threshold {threshold:.4f}, floor {floor:.3f}, bar {args.bar:.3f}; "
            f"embedder {fingerprint}\n"
        )
    out.write(_render(args, metrics, result))
    return result.exit_status
