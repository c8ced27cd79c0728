"""The race's report: metric / vetcache / LiteLLM / ratio, whether the acceptance conditions
of issues 9 and 21 hold, and what reached the fake upstream."""

from __future__ import annotations

import argparse
from typing import Any

from tests.bench.race_traffic import LEVELS, pct


def report(results: dict[str, Any]) -> list[str]:
    miss = results["misses"]
    rows: list[tuple[str, float, float]] = []
    for q in (0.5, 0.99):
        rows.append((f"miss added p{round(q * 100)} ms (c=1)",
                     pct(miss["vetcache"]["overhead"], q), pct(miss["LiteLLM"]["overhead"], q)))  # fmt: skip
    for kind in ("semantic", "exact"):
        for level in LEVELS:
            v, ll = (results["hits"][f"{kind} c={level} {n}"] for n in ("vetcache", "LiteLLM"))
            rows += [(f"{kind} hit p50 ms c={level}", v["p50"], ll["p50"]),
                     (f"{kind} hit p99 ms c={level}", v["p99"], ll["p99"]),
                     (f"{kind} hits/s c={level}", v["hits_per_s"], ll["hits_per_s"]),
                     (f"{kind} hit ratio c={level}", v["hit_ratio"], ll["hit_ratio"])]  # fmt: skip
    para = results["paraphrases"]
    rows.append(("paraphrase hit ratio (c=1)", para["vetcache"], para["LiteLLM"]))
    lines = [f"{'metric':<30} {'vetcache':>10} {'LiteLLM':>10} {'ratio':>8}"]
    for name, v, ll in rows:
        lines.append(f"{name:<30} {v:>10.2f} {ll:>10.2f} {v / ll if ll else float('nan'):>8.3f}")
    return lines + acceptance(results)


def acceptance(results: dict[str, Any]) -> list[str]:
    cell = results["hits"]
    p99 = [
        cell[f"semantic c={level} vetcache"]["p99"] / cell[f"semantic c={level} LiteLLM"]["p99"]
        for level in LEVELS
    ]
    rate = {
        kind: cell[f"{kind} c=32 vetcache"]["hits_per_s"]
        / cell[f"{kind} c=32 LiteLLM"]["hits_per_s"]
        for kind in ("semantic", "exact")
    }
    miss = [pct(results["misses"][n]["overhead"], 0.5) for n in ("vetcache", "LiteLLM")]
    semantic = cell["semantic c=32 vetcache"]["hits_per_s"]
    return [
        "acceptance (issue 9): semantic hit p99 <= 1/3 of LiteLLM's: "
        + ", ".join(f"c={lv} {r:.3f} {'holds' if r <= 1 / 3 else 'FAILS'}" for lv, r in zip(LEVELS, p99, strict=True)),
        "acceptance (issue 9): hits/s at c=32 >= 3x LiteLLM's: "
        + ", ".join(f"{k} {r:.2f}x {'holds' if r >= 3 else 'FAILS'}" for k, r in rate.items()),
        "acceptance (issue 21): semantic hit p99 <= 1/10 of LiteLLM's: "
        + ", ".join(f"c={lv} {r:.3f} {'holds' if r <= 1 / 10 else 'FAILS'}" for lv, r in zip(LEVELS, p99, strict=True)),
        f"acceptance (issue 21): semantic hits/s at c=32 >= 800: {semantic:.0f} "
        f"{'holds' if semantic >= 800 else 'FAILS'}",
        f"miss row: added p50 over the direct upstream vetcache {miss[0]:.2f} ms, "
        f"LiteLLM {miss[1]:.2f} ms ({'lower' if miss[0] <= miss[1] else 'HIGHER'} for vetcache)",
    ]  # fmt: skip


def upstream_lines(counts: dict[str, dict[str, int]], questions: int) -> list[str]:
    """What reached the fake upstream: proof LiteLLM embeds through it, and no hit calls it."""

    def delta(name: str, start: str, end: str) -> int:
        return counts[end].get(name, 0) - counts[start].get(name, 0)

    embed = "/embeddings race-embed"
    return [
        f"upstream /v1/embeddings from LiteLLM: {delta(embed, 'before', 'after_misses')} during "
        f"the {questions} misses, {delta(embed, 'after_misses', 'after')} during the hit phase",
        "upstream chat calls during the hit phase: "
        f"vetcache {delta('/chat/completions race-vetcache', 'after_misses', 'after')}, "
        f"LiteLLM {delta('/chat/completions race-litellm', 'after_misses', 'after')}",
    ]


def summary(results: dict[str, Any], args: argparse.Namespace) -> list[str]:
    """Everything the race prints once it is over."""
    direct, miss = results["misses"]["direct"]["latency"], results["misses"]
    return [
        "",
        f"fake upstream latency {args.latency_ms} ms, threshold {args.threshold}, "
        f"backend {args.backend}, vetcache lookup budget "
        f"{args.lookup_budget_ms or 'default'} ms, {results['config']['questions_used']} questions, "
        f"{args.requests} requests per hit cell; hit percentiles over hits only",
        f"direct upstream: p50 {pct(direct, 0.5):.2f} ms, p99 {pct(direct, 0.99):.2f} ms",
        f"first asks that hit an earlier question instead: vetcache "
        f"{miss['vetcache']['hit_instead']}, LiteLLM {miss['LiteLLM']['hit_instead']}; "
        f"paraphrases where the two disagree: {results['paraphrases']['disagree']}",
        *upstream_lines(results["upstream_requests"], len(direct)),
        *report(results),
    ]
