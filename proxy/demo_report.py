"""The report ``vetcache demo --learn`` prints: both passes by namespace, what the review
changed, what was trained, what the gate said. Which numbers come from the workload's labels
and which from the judge is said beside each."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from proxy.demo_pass import Counts, Tally

if TYPE_CHECKING:
    from proxy.demo_learn import PassOne
    from proxy.demo_training import Gated, Trained

RUN_HEADER = (
    "run     namespace  requests  hits  hit rate  semantic  false  FP share  refused by verifier"
)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _rows(tally: Tally) -> list[tuple[str, Counts]]:
    return [*sorted(tally.counts.items()), ("all", tally.total())]


def _pass_one(one: PassOne, threshold: float) -> list[str]:
    total = one.tally.total()
    lines = [
        f"Pass 1: workload.json ({total.requests} requests) on the base models: bundled "
        f"embedder, no verifier, threshold {threshold:.2f}; the contrast judge audits every "
        "hit and near-miss.",
        "namespace  requests  hits  exact  semantic  false  FP share  judge flagged",
    ]
    for name, counts in _rows(one.tally):
        flagged = (
            sum(one.judge_flagged.values()) if name == "all" else one.judge_flagged.get(name, 0)
        )
        lines.append(
            f"{name:<10} {counts.requests:>8} {counts.hits:>5} {counts.exact:>6}"
            f" {counts.semantic:>9} {counts.false:>6} {_pct(counts.fp_share):>9} {flagged:>14}"
        )
    lines.append(
        "(false and FP share: from the workload's labels, over served semantic hits; judge "
        "flagged: the contrast judge's false_positive verdicts on them.)"
    )
    return lines


def _review(one: PassOne) -> list[str]:
    done = one.review
    return [
        "",
        "Review: nobody reviewed anything; the workload's own labels stand in for a person, "
        "recorded through the review route (POST /admin/verdicts/{id}/review), so the "
        f"ledger holds reviews. {done.reviewed} judge verdicts reviewed: the {done.queue} "
        "rows of the review queue and the judge's 'correct' labels, which the queue never "
        f"shows. Confirmed {done.confirmed}; overturned {done.passed_traps + done.flagged_good}: "
        f"traps the judge passed {done.passed_traps}, good pairs it flagged "
        f"{done.flagged_good}.",
    ]


def _learned(trained: Trained, gated: Gated) -> list[str]:
    lines = [
        "",
        f"Learn: {trained.pairs} labelled pairs mined from the ledger ({trained.positives} "
        f"positives, {trained.negatives} hard negatives; {trained.reviewed} of them decided by "
        f"a review). {trained.summary}",
        f"  (what `{' '.join(trained.command)}` does on a Redis ledger; the demo's ledger is "
        "in-process, so it is read in-process)",
        "",
        f"Gate: `{' '.join(gated.command)}`: {gated.verdict}",
    ]
    if not gated.passed:
        lines.append(
            "  In production the refused candidate would not be deployed; pass 2 runs it "
            "anyway, to show what it does."
        )
    return lines


def _pass_two(runs: dict[str, Tally], threshold: float) -> list[str]:
    total = runs["before"].total()
    lines = [
        "",
        f"Pass 2: workload-learn.json ({total.requests} requests: other prompts of the same "
        f"kinds, never trained on), threshold {threshold:.2f}, fresh gateways and "
        "namespaces, audits off.",
        RUN_HEADER,
    ]
    for name in [name for name, _ in _rows(runs["before"])]:
        for run, tally in runs.items():
            counts = tally.total() if name == "all" else tally.counts.get(name, Counts())
            lines.append(
                f"{run:<7} {name:<10} {counts.requests:>8} {counts.hits:>5}"
                f" {_pct(counts.hit_rate):>9} {counts.semantic:>9} {counts.false:>6}"
                f" {_pct(counts.fp_share):>9} {counts.refused.get('verifier', 0):>20}"
            )
    base = "base: the verifier it was trained from, at its own operating point; " * ("base" in runs)
    lines.append(
        f"(before: no verifier; {base}after: the trained verifier serving at its card's "
        "operating point. Every number here is counted from the workload's labels: a semantic "
        "hit is false when the answer served was made for a prompt that needs another answer.)"
    )
    return lines


def learn_report(
    args: argparse.Namespace,
    one: PassOne,
    trained: Trained,
    gated: Gated,
    runs: dict[str, Tally],
) -> str:
    lines = ["", *_pass_one(one, args.threshold), *_review(one), *_learned(trained, gated)]
    lines += _pass_two(runs, args.threshold)
    caught = runs["after"].false_hits[:3]
    if caught:
        lines += ["", "Still served wrong with the trained verifier, for example:"]
        lines += [f'  "{asked}" got the answer to "{cached}"' for cached, asked in caught]
    return "\n".join(lines)
