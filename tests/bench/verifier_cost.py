"""What the learned verifier adds per verified candidate at concurrency 1: p50/p99 of one
pair through ``VerifierCheck`` (its executor hop and the model, what a hit waits for) and of
the model alone (``VerifierModel.scores``), int8 and fp32, short pairs (the fixture prompts,
~10 words) and long ones (~200 words a side, truncated to the model's window).

The model is a verifier folder (``--model DIR``, as ``vetcache train`` writes), or with
``--layers N [N ...]`` a CrossEncoder built from the bundled model's weights cut to its first
N layers (untrained head: it scores nonsense, but costs what a trained one of that size does).
Target (issue 19): p50 <= 2 ms, p99 <= 5 ms per verified candidate at c=1. Numbers only.

    .venv/bin/python tests/bench/verifier_cost.py --layers 6 3 [--requests 400]
    .venv/bin/python tests/bench/verifier_cost.py --model path/to/verifier
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cache.onnx_export import Precision
from cache.verifier import VerifierCheck
from cache.verifier_model import CARD, VerifierModel, load_scorer
from cache.verifier_settings import VerifierSettings
from tests.conftest import PROMPT_PAIRS

LONG = (
    "I run a small online shop that sells handmade ceramics, and last month I switched my "
    "payment provider because the old one kept failing on international cards. Since then "
    "some customers say they were charged twice, others that the order shows as unpaid "
    "although the money left their account. I exported the transactions and compared them "
    "with the orders: about one in forty has a duplicate charge, always on cards issued "
    "outside the country, and always when the customer pressed the pay button again after "
    "the page seemed to hang. "
)


def short_pairs() -> list[tuple[str, str]]:
    with PROMPT_PAIRS.open(newline="", encoding="utf-8") as handle:
        return [(r["text_a"], r["text_b"]) for r in csv.DictReader(handle, delimiter="\t")]


def long_pairs() -> list[tuple[str, str]]:
    ask = ["How do I refund the duplicates?", "How do I stop the duplicates?"]
    return [(LONG * 2 + a, LONG * 2 + b) for a, b in zip(ask, reversed(ask), strict=True)] * 10


def cut_model(layers: int, out: Path) -> Path:
    """A CrossEncoder from the bundled model's first ``layers`` layers, saved with a card."""
    from sentence_transformers import CrossEncoder

    from cache.embedder import BUNDLED_MODEL, resolve_model

    model = CrossEncoder(resolve_model(BUNDLED_MODEL), num_labels=1, device="cpu")
    bert = model.model.bert
    bert.encoder.layer = bert.encoder.layer[:layers]
    model.model.config.num_hidden_layers = layers
    model.save(str(out))
    card = {"name": f"minilm-{layers}l-untrained", "threshold": 0.5, "base_model": BUNDLED_MODEL}
    (out / CARD).write_text(json.dumps(card))
    return out


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def through_check(scorer: VerifierModel, pairs: list[tuple[str, str]], n: int) -> list[float]:
    """Milliseconds per candidate through the check, one at a time (c=1)."""
    check = VerifierCheck(VerifierSettings(model="-", timeout_ms=10_000), scorer=scorer)
    await check.open()
    took = []
    for i in range(n + 20):
        cached, new = pairs[i % len(pairs)]
        started = time.perf_counter()
        await check.assess(cached, new, 0.9)
        took.append((time.perf_counter() - started) * 1000)
    await check.close()
    return took[20:]  # warm-up dropped


def alone(
    scorer: VerifierModel, pairs: list[tuple[str, str]], n: int
) -> tuple[list[float], list[float]]:
    """Milliseconds per pair of the model alone: wall clock, and this thread's CPU time (the
    model runs on it, one thread: what the pair costs when nothing else wants the CPU)."""
    wall, cpu = [], []
    for i in range(n + 20):
        started, used = time.perf_counter(), time.thread_time()
        scorer.scores([pairs[i % len(pairs)]])
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.thread_time() - used) * 1000)
    return wall[20:], cpu[20:]


def tokens(model: Path, pairs: list[tuple[str, str]]) -> float:
    """Mean tokens of a pair as the model reads it (truncated to its window)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model))
    encoded = tokenizer([a for a, _ in pairs], [b for _, b in pairs], truncation=True)
    return sum(len(ids) for ids in encoded["input_ids"]) / len(pairs)


def measure(model: Path, onnx_dir: Path, requests: int) -> None:
    short, long = short_pairs(), long_pairs()
    print(f"\n== {model.name}: short pairs {tokens(model, short):.0f} tokens on average, "
          f"long {tokens(model, long):.0f}")  # fmt: skip
    print(
        f"{'precision':>9} {'pairs':>6} {'check p50':>10} {'p99':>7} {'model p50':>10} {'p99':>7}"
        f" {'cpu p50':>8} {'p99':>7}"
    )
    precisions: tuple[Precision, ...] = ("int8", "fp32")
    for precision in precisions:
        scorer = load_scorer(model, precision, onnx_dir, threads=1)
        for kind, pairs in (("short", short), ("long", long)):
            check = asyncio.run(through_check(scorer, pairs, requests))
            bare, cpu = alone(scorer, pairs, requests)
            print(f"{precision:>9} {kind:>6} {pct(check, 0.5):>10.2f} {pct(check, 0.99):>7.2f} "
                  f"{pct(bare, 0.5):>10.2f} {pct(bare, 0.99):>7.2f} "
                  f"{pct(cpu, 0.5):>8.2f} {pct(cpu, 0.99):>7.2f}")  # fmt: skip


def yardstick(onnx_dir: Path, requests: int) -> None:
    """The int8 embedder's time per query on the same machine, now: a busy machine slows
    both alike (docs/performance.md has the embedder's numbers on an idle one)."""
    from cache.onnx_embedder import OnnxEmbedder

    embedder = OnnxEmbedder(precision="int8", directory=onnx_dir)
    embedder._load()
    texts = [b for _, b in short_pairs()]
    took, cpu = [], []
    for i in range(requests + 20):
        started, used = time.perf_counter(), time.thread_time()
        embedder._encode([texts[i % len(texts)]])
        took.append((time.perf_counter() - started) * 1000)
        cpu.append((time.thread_time() - used) * 1000)
    print(f"yardstick: the int8 embedder, one short prompt: p50 {pct(took[20:], 0.5):.2f} "
          f"p99 {pct(took[20:], 0.99):.2f} ms; cpu p50 {pct(cpu[20:], 0.5):.2f} "
          f"p99 {pct(cpu[20:], 0.99):.2f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, nargs="*", default=[], help="verifier folders")
    parser.add_argument("--layers", type=int, nargs="*", default=[], help="cut the bundled model")
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vetcache-verifier-") as tmp:
        models = list(args.model)
        models += [cut_model(n, Path(tmp) / f"minilm-{n}l") for n in args.layers]
        if not models:
            parser.error("give --model DIR or --layers N")
        yardstick(Path(tmp) / "onnx", args.requests)
        for model in models:
            measure(model, Path(tmp) / "onnx", args.requests)


if __name__ == "__main__":
    main()
