"""Does fine-tuning the embedder help? Base vs fine-tuned embedders on pairs their training
never saw: the margin (mean similarity of same-answer pairs minus that of traps; the release
gate wants >= 0.18 per cohort) and, at the operating threshold, the FP share of served hits
and the recall of same-answer pairs, per cohort.

    python tests/bench/embedder_quality.py [--models mnrl cosent mnrl:1e-4:2 ...]
        [--thresholds 0.95 0.9 0.85] [--train-only]

Each loss (and learning rate and epochs) is fine-tuned once as ``vetcache train --embedder
--loss L`` does (the shipped
training pairs, audit/training_pairs/*.tsv, split by family with the default seed; trained
on the train split) and cached under ``.cache/embedder-quality/<loss>``; delete it to
retrain. Every model is measured as served (ONNX int8). Splits printed: ``train`` (in
sample: what the model was fit on), ``validation`` (families held out of training, used to
choose the loss) and ``heldout`` (tests/bench/data/verifier_heldout.tsv: written before any
model was trained, its own prompt families; never trained or tuned on; pairs sharing a
prompt with the training pairs are left out).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from audit.pairs import Pair, embed_similarities
from audit.training.embedder_metrics import EmbedderMetrics, by_cohort, table
from audit.training.files import load_pair_file, shipped_pair_files
from audit.training.hyperparameters import EmbedderHyperparameters
from audit.training.records import TrainingPair, normalize
from audit.training.splits import split_pairs
from cache.embedder import BUNDLED_MODEL
from cache.settings import CacheSettings
from tests.bench.shared_data import ROOT

HELD_OUT = ROOT / "tests" / "bench" / "data" / "verifier_heldout.tsv"
CACHE = ROOT / ".cache" / "embedder-quality"
DEFAULT_MODELS = (
    "mnrl:2e-5:1", "cosent:2e-5:1", "online-contrastive:2e-5:1", "mnrl:1e-4:2",
    "online-contrastive:1e-4:2",
)  # fmt: skip
"""Each loss at 2e-5 for one epoch, then the two best on validation with a larger step and
two epochs (the last is ``vetcache train --embedder``'s default, chosen on validation)."""


def _spec(value: str) -> EmbedderHyperparameters:
    """``LOSS`` or ``LOSS:LR:EPOCHS`` -> the hyperparameters (the rest default)."""
    loss, *rest = value.split(":")
    if len(rest) not in (0, 2):
        raise argparse.ArgumentTypeError(f"LOSS or LOSS:LR:EPOCHS, found {value!r}")
    found = {"loss": loss} if not rest else {"loss": loss, "lr": rest[0], "epochs": rest[1]}
    try:
        return EmbedderHyperparameters.model_validate(found)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).splitlines()[0]) from None


def _train(hp: EmbedderHyperparameters, pairs: Sequence[TrainingPair]) -> Path:
    """The model fine-tuned with ``hp`` (trained now unless cached), in
    ``CACHE/<loss>-lr<lr>-e<epochs>``."""
    from audit.training.embedder_trainer import fine_tune, load_embedder
    from audit.training.trainer import torch_threads

    folder = CACHE / f"{hp.loss}-lr{hp.lr:g}-e{hp.epochs:g}"
    if (folder / "modules.json").is_file():
        return folder
    started = time.perf_counter()
    with torch_threads(hp.threads):
        model = load_embedder(hp)
        rows = fine_tune(model, pairs, hp)
    model.save(str(folder))
    print(f"{folder.name}: trained on {rows} rows in {time.perf_counter() - started:.0f} s")
    return folder


def _unseen(pairs: Sequence[TrainingPair], trained: Sequence[TrainingPair]) -> list[TrainingPair]:
    texts = {normalize(t) for p in trained for t in (p.text_a, p.text_b)}
    return [
        p for p in pairs if normalize(p.text_a) not in texts and normalize(p.text_b) not in texts
    ]


Measured = dict[float, dict[str, dict[str, EmbedderMetrics]]]
"""Per threshold, per split, per cohort."""


async def _measure(
    model: str, groups: dict[str, list[TrainingPair]], thresholds: Sequence[float]
) -> tuple[Measured, str]:
    settings = CacheSettings(
        embedding_model=model, embedding_backend="onnx-int8", onnx_dir=str(CACHE / "onnx")
    )
    everything = [p for members in groups.values() for p in members]
    plain = [Pair(p.text_a, p.text_b, p.label, p.cohorts.kind, 0) for p in everything]
    sims, fingerprint = await embed_similarities(plain, settings)
    found: Measured = {t: {} for t in thresholds}
    start = 0
    for name, members in groups.items():
        for threshold in thresholds:
            found[threshold][name] = by_cohort(
                members, sims[start : start + len(members)], threshold
            )
        start += len(members)
    return found, fingerprint


def _summary(name: str, results: dict[str, dict[str, EmbedderMetrics]]) -> str:
    cells = []
    for split, metrics in results.items():
        m = metrics["all"]
        margin = "-" if m.margin is None else f"{m.margin:.3f}"
        cells.append(f"{split}: margin {margin} fp {_pct(m.fp_share)} recall {_pct(m.recall)}")
    return f"{name:<20} " + " | ".join(cells)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", nargs="+", type=_spec, default=[_spec(m) for m in DEFAULT_MODELS],
        metavar="LOSS[:LR:EPOCHS]", help=f"fine-tunings to measure (default: {' '.join(DEFAULT_MODELS)})",
    )  # fmt: skip
    parser.add_argument(
        "--thresholds", type=float, nargs="+", default=[CacheSettings().threshold, 0.9, 0.85]
    )
    parser.add_argument("--train-only", action="store_true")
    args = parser.parse_args()
    pairs = [p for path in shipped_pair_files() for p in load_pair_file(path)]
    splits = split_pairs(pairs, seed=EmbedderHyperparameters().seed)
    models = {path.name: str(path) for path in (_train(hp, splits["train"]) for hp in args.models)}
    if args.train_only:
        return
    groups = {
        "train": list(splits["train"]),
        "validation": list(splits["validation"]),
        "heldout": _unseen(load_pair_file(HELD_OUT), pairs),
    }
    print("pairs: " + ", ".join(f"{k} {len(v)}" for k, v in groups.items()))
    print("train is in sample; validation and heldout are not (heldout: never tuned on)")
    results = {"base": asyncio.run(_measure(BUNDLED_MODEL, groups, args.thresholds))}
    for loss, folder in models.items():
        results[loss] = asyncio.run(_measure(folder, groups, args.thresholds))
    for name, (_, fingerprint) in results.items():
        print(f"{name}: {fingerprint}")
    for threshold in args.thresholds:
        print(f"\nat threshold {threshold}")
        for name, (measured, _) in results.items():
            print(_summary(name, measured[threshold]))
    base = results["base"][0][args.thresholds[0]]["heldout"]
    for loss in models:
        print(f"\nheldout at {args.thresholds[0]}, {loss} (margin0 fp0 recall0: base)")
        print(table(results[loss][0][args.thresholds[0]]["heldout"], base))


if __name__ == "__main__":
    main()
