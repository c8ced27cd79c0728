"""``vetcache train --embedder``: fine-tune the embedding model contrastively on the same
labelled pairs as the verifier (``audit.training.embedder_pipeline``).

    vetcache train --embedder --out DIR [--pairs FILE...] [--ledger [--config F]
                   [--namespace N]] [--test-pairs FILE...] [--holdout-source S]
                   [--holdout-product P] [--base M] [--loss mnrl|cosent|online-contrastive]
                   [--threshold T] [--onnx-dir D] [--epochs E] [--lr LR] [--batch-size B]
                   [--max-length N] [--threads N] [--seed S]

``--base`` defaults to the configured ``cache.embedding_model``, ``--threshold`` to
``cache.threshold`` and ``--onnx-dir`` to ``cache.onnx_dir``. Writes DIR, a
sentence-transformers folder the gateway loads as ``cache.embedding_model: DIR``, with its
card (``vetcache-embedder.json``), and its ONNX int8 export into the ONNX folder, so the
card names the fingerprint the gateway will serve. Prints the validation split per cohort,
fine-tuned beside base; the release decision is ``vetcache eval --model DIR --against
BASE``. Bad input: one line on stderr, exit status 2, nothing written.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from audit.errors import InputError, LedgerError
from audit.training.hyperparameters import EmbedderHyperparameters
from proxy.commands import train
from proxy.settings import Settings


def _problem(args: argparse.Namespace, settings: Settings) -> str | None:
    if args.default or args.layers is not None:
        return "--default and --layers are the verifier's: drop them with --embedder"
    if problem := train.source_problem(args, settings):
        return problem
    if not -1 <= args.threshold <= 1:
        return "--threshold must be a similarity in [-1, 1]"
    return None


def run(args: argparse.Namespace, settings: Settings) -> int:
    """The command (``args`` as ``vetcache train`` parses them); its exit status."""
    from pydantic import ValidationError

    defaults = EmbedderHyperparameters(base=settings.cache.embedding_model).model_dump()
    train.fill_defaults(args, defaults)
    if args.threshold is None:
        args.threshold = settings.cache.threshold
    if args.onnx_dir is None and settings.cache.onnx_dir:
        args.onnx_dir = Path(settings.cache.onnx_dir)
    if problem := _problem(args, settings):
        return train.fail(problem)
    try:
        hp = EmbedderHyperparameters(**{n: getattr(args, n, defaults[n]) for n in defaults})
    except ValidationError as exc:
        first = exc.errors()[0]
        return train.fail(f"--{'-'.join(map(str, first['loc']))}: {first['msg']}")
    return asyncio.run(_train(args, settings, hp))


async def _train(args: argparse.Namespace, settings: Settings, hp: EmbedderHyperparameters) -> int:
    from audit.pairs import embed_similarities
    from audit.training.embedder_metrics import table
    from audit.training.embedder_pipeline import EmbedderPlan, run_embedder_training
    from cache.errors import EmbedderError

    try:
        pairs = train.file_pairs(args.pairs) + (await train.ledger_pairs(args, settings))
        plan = EmbedderPlan(
            pairs=pairs, hyperparameters=hp, threshold=args.threshold, onnx_dir=args.onnx_dir,
            command=train.command_line(args), external=train.file_pairs(args.test_pairs),
            held_out=train.held_out(args),
        )  # fmt: skip
        card = await run_embedder_training(plan, args.out, embed_similarities)
    except InputError as exc:
        return train.fail("; ".join(exc.errors[:5]))
    except EmbedderError as exc:
        return train.fail(f"embedder: {exc}")
    except LedgerError as exc:
        return train.fail(f"ledger unreachable: {exc}")
    for split in ("train", "validation", "test", "external"):
        if split in card.metrics:
            note = " (in sample)" if split == "train" else ""
            print(
                f"\n{split}{note}, {card.counts.split[split]} pairs; at threshold "
                f"{card.threshold} (margin0 fp0 recall0: the base model)\n"
                f"{table(card.metrics[split], card.base_metrics[split])}"
            )
    print(
        f"\nwrote {args.out}: version {card.version}, fingerprint {card.fingerprint}\n"
        f"gate it: vetcache eval --model {args.out} --pairs FILE --against {hp.base}"
    )
    return 0
