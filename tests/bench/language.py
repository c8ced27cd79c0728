"""What language detection costs on the hit path and how often it is right on short prompts.

Reads the prompts of ``tests/fixtures/languages.tsv`` (57 short prompts in 18 languages) and,
when ``../shared/data`` is there, every distinct English text of fow_cache and sts2016_qq.
Prints microseconds per prompt (first sight and memoized) and how each set was read. An
English prompt read as another language would lose its semantic hits: that count must be 0.
Numbers only; nothing is asserted.

    .venv/bin/python tests/bench/language.py
"""

from __future__ import annotations

import csv
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cache.language import UNDETERMINED, _detect, detect
from tests.bench.shared_data import ROOT, SHARED_DATA

FIXTURE = ROOT / "tests" / "fixtures" / "languages.tsv"


def english_texts() -> list[str]:
    texts: set[str] = set()
    for name in ("fow_cache", "sts2016_qq"):
        path = SHARED_DATA / name / "pairs.tsv"
        if path.is_file():
            with path.open(encoding="utf-8") as f:
                for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                    texts.update((row["text_a"], row["text_b"]))
    return sorted(texts)


def timed(texts: list[str], clock: Callable[[], float]) -> list[float]:
    """Microseconds per call by ``clock``, each text once."""
    out = []
    for text in texts:
        start = clock()
        detect(text)
        out.append((clock() - start) * 1e6)
    return out


def main() -> None:
    start = time.perf_counter()
    detect("load the model")
    print(f"model load: {time.perf_counter() - start:.2f} s (once per process, at start)")
    rows = [line.split("\t", 1) for line in FIXTURE.read_text("utf-8").splitlines() if line]
    english = english_texts()
    texts = [text for _, text in rows] + english
    runs = []
    # Wall time includes the scheduler's preemptions on a busy machine; the thread's CPU
    # time is what the detection itself costs.
    for clock_name, clock in (("wall", time.perf_counter), ("cpu", time.thread_time)):
        _detect.cache_clear()
        runs.append((f"first sight, {clock_name}", timed(texts, clock)))
    runs.append(("memoized, wall", timed(texts, time.perf_counter)))
    for what, samples in runs:
        p50 = statistics.median(samples)
        p99 = sorted(samples)[int(len(samples) * 0.99)]
        print(f"{what}: p50 {p50:.1f} us, p99 {p99:.1f} us per prompt ({len(samples)} prompts)")
    right = sum(detect(text) == language for language, text in rows)
    print(f"fixture: {right}/{len(rows)} read right")
    if english:
        read = Counter(detect(text) for text in english)
        wrong = sum(n for code, n in read.items() if code not in ("en", UNDETERMINED))
        print(f"English texts of ../shared/data: {dict(read)}; read as another language: {wrong}")
    else:
        print("English texts: skipped (../shared/data not found)")


if __name__ == "__main__":
    main()
