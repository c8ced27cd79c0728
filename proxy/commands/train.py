"""``vetcache train``: build a verifier from labelled pairs with provenance
(``audit.training``).

    vetcache train --default
    vetcache train --out DIR [--pairs FILE...] [--ledger [--config F] [--namespace N]]
                   [--test-pairs FILE...] [--holdout-source S] [--holdout-product P]
                   [--base M] [--layers N] [--epochs E] [--lr LR] [--batch-size B]
                   [--seed S] [--target-fp 0.03] [--floor 0.75]
    vetcache train --embedder --out DIR [same sources and splits] [--base M] [--loss L]
                   [--threshold T] [--onnx-dir D] [--epochs E] [--lr LR] [--batch-size B]

``--default`` builds the default verifier (``cache.verifier.model: default``) from the pairs
vetcache ships (``audit/training_pairs``) with the default hyperparameters, into
``cache.verifier_model.default_folder()``; run again, it says the model is there.
Writes DIR (a CrossEncoder and its card, ``vetcache-verifier.json``) and prints metrics per
cohort. Bad input is one line on stderr and exit status 2, with nothing written; DIR must
not exist. Exit status 1 when no threshold met ``--target-fp`` on the validation split (the
model is written with threshold 1.0: it serves nothing until retrained).
``--embedder`` fine-tunes the embedding model instead (``proxy.commands.train_embedder``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import typing
from collections.abc import Callable
from pathlib import Path

from audit.errors import InputError, LedgerError
from audit.training.hyperparameters import (
    DEFAULT_FLOOR,
    DEFAULT_TARGET_FP,
    EmbedderLoss,
    Hyperparameters,
)
from audit.training.records import TrainingPair
from proxy.commands import common
from proxy.commands.common import CONFIG_HELP
from proxy.settings import Settings

NAME = "train"
HELP = (
    "train a verifier (or, with --embedder, fine-tune the embedder) from labelled pairs and "
    "the audit ledger; write it with its card"
)
SOURCES = ("file", "ledger", "review", "feedback")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--default", action="store_true",
        help="build the default verifier from the pairs vetcache ships (cache.verifier.model: "
        "default), into its folder",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, metavar="DIR", help="folder to write")
    parser.add_argument(
        "--pairs", type=Path, nargs="+", action="extend", default=[], metavar="FILE",
        help="labelled pair files (8-column TSV, or what vetcache eval reads)",
    )  # fmt: skip
    parser.add_argument("--ledger", action="store_true", help="add the audit ledger's labels")
    parser.add_argument("--config", type=Path, help=f"{CONFIG_HELP}; the ledger and embedder")
    parser.add_argument("--namespace", help="only this namespace's ledger labels")
    parser.add_argument(
        "--test-pairs", type=Path, nargs="+", action="extend", default=[], metavar="FILE",
        help="held-out pair files: scored only, never trained or tuned on",
    )  # fmt: skip
    parser.add_argument(
        "--holdout-source", action="append", choices=SOURCES, default=[],
        help="put every family with a pair from this source in the test split",
    )  # fmt: skip
    parser.add_argument(
        "--holdout-product", action="append", default=[], metavar="PRODUCT",
        help="put every family with a pair of this product in the test split",
    )  # fmt: skip
    _add_hyperparameters(parser)
    parser.add_argument(
        "--target-fp", type=float, default=DEFAULT_TARGET_FP,
        help="FP share of served hits the operating point is chosen for (validation split)",
    )  # fmt: skip
    parser.add_argument(
        "--floor", type=float, default=DEFAULT_FLOOR,
        help="similarity under which a pair is no candidate (the threshold in force)",
    )  # fmt: skip


def _add_hyperparameters(parser: argparse.ArgumentParser) -> None:
    """Options whose defaults differ between the verifier and the embedder: None here,
    filled from ``Hyperparameters`` or ``EmbedderHyperparameters`` (``fill_defaults``)."""
    parser.add_argument("--base", help="weights to start from (--embedder: the configured model)")
    parser.add_argument("--layers", type=int, help="encoder layers kept (verifier)")
    parser.add_argument("--epochs", type=float, help="epochs")
    parser.add_argument("--lr", type=float, help="peak learning rate")
    parser.add_argument("--batch-size", type=int, help="batch size")
    parser.add_argument("--max-length", type=int, help="tokens")
    parser.add_argument("--threads", type=int, help="torch threads (weights depend on it)")
    parser.add_argument("--seed", type=int, help="seed")
    parser.add_argument(
        "--embedder", action="store_true",
        help="fine-tune the embedding model contrastively instead of training a verifier",
    )  # fmt: skip
    parser.add_argument(
        "--loss", choices=typing.get_args(EmbedderLoss), help="--embedder: the contrastive loss"
    )
    parser.add_argument(
        "--threshold", type=float,
        help="--embedder: similarity FP share and recall are measured at (default: "
        "cache.threshold)",
    )  # fmt: skip
    parser.add_argument(
        "--onnx-dir", type=Path, metavar="DIR",
        help="--embedder: where the ONNX int8 export goes (default: cache.onnx_dir)",
    )  # fmt: skip


HYPERPARAMETERS = ("base", "layers", "epochs", "lr", "batch_size", "max_length", "threads", "seed")


def fill_defaults(args: argparse.Namespace, defaults: dict[str, object]) -> None:
    """Each hyperparameter option left out takes its default from ``defaults``."""
    for name in (*HYPERPARAMETERS, "loss"):
        if getattr(args, name, None) is None and name in defaults:
            setattr(args, name, defaults[name])


def command_line(args: argparse.Namespace) -> list[str]:
    """The command that rebuilds the same model: every option spelled out."""
    line = ["vetcache", "train", "--out", str(args.out), *_source_options(args)]
    if args.default:
        line.insert(2, "--default")
    for name in HYPERPARAMETERS:
        if getattr(args, name) is not None:
            line += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    if args.embedder:
        line[2:2] = ["--embedder", "--loss", str(args.loss)]
        onnx = [] if args.onnx_dir is None else ["--onnx-dir", str(args.onnx_dir)]
        return [*line, "--threshold", str(args.threshold), *onnx]
    return [*line, "--target-fp", str(args.target_fp), "--floor", str(args.floor)]


def _source_options(args: argparse.Namespace) -> list[str]:
    """The options naming what a model is trained on and how it is split."""
    line: list[str] = []
    for name in ("pairs", "test_pairs"):
        if values := getattr(args, name):
            line += [f"--{name.replace('_', '-')}", *map(str, values)]
    if args.ledger:
        line.append("--ledger")
    for name in ("config", "namespace"):
        if getattr(args, name) is not None:
            line += [f"--{name}", str(getattr(args, name))]
    for source in args.holdout_source:
        line += ["--holdout-source", source]
    for product in args.holdout_product:
        line += ["--holdout-product", product]
    return line


def source_problem(args: argparse.Namespace, settings: Settings) -> str | None:
    """What is wrong with ``--out`` and the sources (verifier and embedder alike)."""
    if args.out is None:
        return "--out DIR is required (or --default)"
    if args.out.exists():
        return f"--out {args.out} already exists (a model is never overwritten)"
    if not args.out.parent.is_dir():
        return f"--out {args.out}: the folder {args.out.parent} does not exist"
    if not args.pairs and not args.ledger:
        return "nothing to train on: give --pairs FILE... and/or --ledger"
    if args.ledger and not settings.redis_url:
        return "--ledger needs redis_url (in --config or VETCACHE_REDIS_URL)"
    return None


def _problem(args: argparse.Namespace, settings: Settings) -> str | None:
    if problem := source_problem(args, settings):
        return problem
    if args.loss is not None or args.threshold is not None or args.onnx_dir is not None:
        return "--loss, --threshold and --onnx-dir need --embedder"
    if not 0 < args.target_fp < 1:
        return "--target-fp must be between 0 and 1"
    if not -1 <= args.floor <= 1:
        return "--floor must be a similarity in [-1, 1]"
    return None


def _default_ready(args: argparse.Namespace) -> bool:
    """With ``--default``: train on the shipped pairs, into the default folder unless
    ``--out``; True when the default verifier is there already (an install step may run
    this every time)."""
    from audit.training.files import shipped_pair_files
    from cache.verifier_model import CARD, default_folder

    folder = default_folder()
    if args.out is None:
        args.out = folder
        if (folder / CARD).is_file():
            print(f"the default verifier is built: {folder}")
            return True
        folder.parent.mkdir(parents=True, exist_ok=True)
    args.pairs = shipped_pair_files()
    return False


def fail(message: str) -> int:
    return common.fail(NAME, message)


def run(args: argparse.Namespace) -> int:
    """The command; its exit status."""
    from pydantic import ValidationError

    settings = common.load(args.config, auth={"enabled": False})  # no request is served
    if args.embedder:
        from proxy.commands import train_embedder

        return train_embedder.run(args, settings)
    fill_defaults(args, Hyperparameters().model_dump())
    if args.default:
        if args.pairs or args.ledger:
            return fail("--default trains on the shipped pairs only: drop --pairs and --ledger")
        if _default_ready(args):
            return 0
    if problem := _problem(args, settings):
        return fail(problem)
    try:
        hyperparameters = Hyperparameters(
            base=args.base, layers=args.layers, epochs=args.epochs, lr=args.lr,
            batch_size=args.batch_size, max_length=args.max_length, threads=args.threads,
            seed=args.seed,
        )  # fmt: skip
    except ValidationError as exc:
        first = exc.errors()[0]
        return fail(f"--{'-'.join(map(str, first['loc']))}: {first['msg']}")
    return asyncio.run(_train(args, settings, hyperparameters))


async def _train(args: argparse.Namespace, settings: Settings, hp: Hyperparameters) -> int:
    from audit.pairs import embed_similarities
    from audit.training.pipeline import TrainPlan, run_training
    from audit.training.report import table
    from cache.errors import EmbedderError

    try:
        pairs = file_pairs(args.pairs) + (await ledger_pairs(args, settings))
        plan = TrainPlan(
            pairs=pairs, hyperparameters=hp, target_fp=args.target_fp, floor=args.floor,
            embedder=settings.cache, command=command_line(args),
            name="vetcache-default" if args.default else "vetcache-verifier",
            external=file_pairs(args.test_pairs), held_out=held_out(args),
        )  # fmt: skip
        outcome = await run_training(plan, args.out, embed_similarities)
    except InputError as exc:
        return fail("; ".join(exc.errors[:5]))
    except EmbedderError as exc:
        return fail(f"embedder: {exc}")
    except LedgerError as exc:
        return fail(f"ledger unreachable: {exc}")
    card = outcome.card
    for split in ("validation", "test", "external"):
        if split in card.metrics:
            print(f"\n{split} ({card.counts.split[split]} pairs)\n{table(card.metrics[split])}")
    print(f"\nwrote {args.out}: threshold {card.threshold:.4f} (floor {card.floor}), "
          f"version {card.version}")  # fmt: skip
    if outcome.external_overlap:
        print(
            f"vetcache: train: warning: {outcome.external_overlap} --test-pairs pairs share a "
            "prompt with the training split: they are not held out",
            file=sys.stderr,
        )
    if not outcome.met_target:
        return common.fail(NAME, f"no threshold met --target-fp {args.target_fp} on validation", 1)
    return 0


def file_pairs(paths: list[Path]) -> list[TrainingPair]:
    from audit.training.files import load_pair_file

    return [pair for path in paths for pair in load_pair_file(path)]


async def ledger_pairs(args: argparse.Namespace, settings: Settings) -> list[TrainingPair]:
    """With ``--ledger``: the labelled pairs of the configured ledger (``--namespace``)."""
    if not args.ledger:
        return []
    from audit.training.ledger import read_audit_ledger

    found = await read_audit_ledger(
        settings.audit, settings.redis_url, redis_cluster=settings.redis_cluster,
        namespace=args.namespace,
    )  # fmt: skip
    if not found:
        print("vetcache: train: the ledger holds no labelled pairs", file=sys.stderr)
    return found


def held_out(args: argparse.Namespace) -> Callable[[TrainingPair], bool] | None:
    sources, products = set(args.holdout_source), set(args.holdout_product)
    if not sources and not products:
        return None

    def chosen(pair: TrainingPair) -> bool:
        return pair.provenance.source in sources or pair.cohorts.product in products

    return chosen
