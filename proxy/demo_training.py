"""The learning step of ``vetcache demo --learn``: mine the ledger, train a verifier, gate it.

Mining is ``audit.training.ledger.ledger_pairs`` over the pass-1 gateway's ledger (what
``vetcache train --ledger`` reads; the demo's ledger is in-process, so it is read here);
training is ``audit.training.pipeline.run_training`` (what ``vetcache train`` runs),
continued from the base verifier; the gate is ``vetcache eval --verifier`` itself
(``proxy.commands.verifier_gate``), parsed from its own command line, on the second
workload's labelled pairs.
"""

from __future__ import annotations

import argparse
import io
import time
from dataclasses import dataclass
from pathlib import Path

from audit.schema import Verdict
from cache.settings import CacheSettings
from proxy.demo_labels import Workload, write_pairs


@dataclass(frozen=True)
class Trained:
    """The verifier the demo trained, and from what."""

    folder: Path
    base: str
    base_is_verifier: bool
    """The base is a verifier folder (with a card): the gate compares against it."""
    pairs: int
    positives: int
    negatives: int
    reviewed: int
    """Pairs whose label a review decided."""
    summary: str
    command: list[str]
    """The ``vetcache train`` command that does the same on a Redis ledger."""


@dataclass(frozen=True)
class Gated:
    """What ``vetcache eval --verifier`` said."""

    command: list[str]
    status: int
    verdict: str
    """Its last line: ``passed`` or ``REFUSED: gated cohorts failing: ...``."""
    output: str

    @property
    def passed(self) -> bool:
        return self.status == 0


def _is_verifier(base: str) -> bool:
    from audit.training.card import CARD_FILE

    return (Path(base) / CARD_FILE).is_file()


def _train_command(args: argparse.Namespace, base: str, out: Path) -> list[str]:
    return [
        "vetcache", "train", "--ledger", "--base", base, "--epochs", f"{args.learn_epochs:g}",
        "--floor", f"{args.threshold:g}", "--target-fp", f"{args.target_fp:g}",
        "--seed", str(args.seed), "--out", str(out),
    ]  # fmt: skip


async def train(
    args: argparse.Namespace, verdicts: list[Verdict], embedder: CacheSettings, folder: Path
) -> Trained:
    """A verifier in ``folder/verifier`` from the labelled pairs of ``verdicts``
    (``InputError`` when they cannot train one: too few, or one label missing)."""
    from audit.pairs import embed_similarities
    from audit.training.hyperparameters import Hyperparameters
    from audit.training.ledger import ledger_pairs
    from audit.training.pipeline import TrainPlan, run_training

    base = str(args.learn_base)
    pairs = ledger_pairs(verdicts)
    out = args.learn_out or folder / "verifier"
    command = _train_command(args, base, out)
    plan = TrainPlan(
        pairs=pairs,
        hyperparameters=Hyperparameters(base=base, epochs=args.learn_epochs, seed=args.seed),
        target_fp=args.target_fp,
        floor=args.threshold,
        embedder=embedder,
        command=command,
    )
    started = time.monotonic()
    outcome = await run_training(plan, out, embed_similarities)
    card = outcome.card
    operating = (
        f"operating point: score >= {card.threshold:.3f}, chosen on its validation split "
        f"for FP share <= {args.target_fp:g}"
        if outcome.met_target
        else f"no score met FP share <= {args.target_fp:g} on its validation split, so its "
        "operating point is 1.0: it lets nothing through its band"
    )
    summary = (
        f"Trained from {base} for {args.learn_epochs:g} epoch(s) in "
        f"{time.monotonic() - started:.0f} s ({card.counts.split.get('train', 0)} train / "
        f"{card.counts.split.get('validation', 0)} validation / "
        f"{card.counts.split.get('test', 0)} test pairs, split by family); {operating}."
    )
    return Trained(
        folder=out,
        base=base,
        base_is_verifier=_is_verifier(base),
        pairs=len(pairs),
        positives=sum(pair.label == 1 for pair in pairs),
        negatives=sum(pair.label == 0 for pair in pairs),
        reviewed=sum(pair.provenance.source == "review" for pair in pairs),
        summary=summary,
        command=command,
    )


async def gate(args: argparse.Namespace, trained: Trained, groups: Workload, folder: Path) -> Gated:
    """``vetcache eval --verifier`` on ``groups``' labelled pairs (against the base
    verifier when the base is one)."""
    from audit.pairs import embed_similarities
    from proxy.commands import evaluate
    from proxy.commands.verifier_gate import run_gate

    pairs = write_pairs(groups, folder / "workload-learn-pairs.tsv")
    command = ["vetcache", "eval", "--verifier", str(trained.folder), "--pairs", str(pairs)]
    if trained.base_is_verifier:
        command += ["--against", trained.base]
    parser = argparse.ArgumentParser(prog="vetcache eval")
    evaluate.add_arguments(parser)
    parsed = parser.parse_args(command[2:])
    buffer = io.StringIO()
    status = await run_gate(parsed, similarities=embed_similarities, out=buffer, err=buffer)
    output = buffer.getvalue()
    last = next((line for line in reversed(output.splitlines()) if line.strip()), "")
    return Gated(command=command, status=status, verdict=last, output=output)
