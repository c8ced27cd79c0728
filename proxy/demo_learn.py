"""``vetcache demo --learn``: the learning loop end to end, on one machine, no services.

1. Pass 1: ``workload.json`` through a gateway on the base models (no verifier) at a useful
   floor threshold, the contrast judge auditing every hit and near-miss.
2. Review: the workload's own labels stand in for a person, through the real review route
   (``POST /admin/verdicts/{id}/review``): every verdict of the judge on a pair the workload
   labels, the review queue's rows and the "correct" labels the queue never shows (the
   judge's misses are exactly the traps it passed).
3. Mine and train: the ledger's labelled pairs (``audit.training.ledger``, what ``vetcache
   train --ledger`` reads: reviews override the judge), a short continued training of the
   base verifier (``audit.training.pipeline``, what ``vetcache train`` runs).
4. Gate: ``vetcache eval --verifier`` on the second workload's labelled pairs, against the
   base verifier when it is one.
5. Pass 2: ``workload-learn.json`` (other prompts of the same kinds) through two fresh
   gateways, audits off: without a verifier, and with the trained one serving.

The embedded store and ledger live in the pass-1 gateway's process, so mining reads them
in-process (``vetcache train --ledger`` reads a Redis ledger). Hit rates and FP shares are
counted from the workload's labels (``proxy.demo_pass``); the judge's numbers are its own.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from audit.schema import Verdict, job_kind
from cache.settings import CacheSettings
from proxy.demo import demo_settings, free_ports, quiet, serve_app
from proxy.demo_labels import FIRST_WORKLOAD, SECOND_WORKLOAD, Labels, Workload, load_workload
from proxy.demo_pass import Tally, gateway, replay
from proxy.demo_report import learn_report

REVIEW_NOTE = "demo --learn: the workload's label, standing in for a person"


@dataclass
class Review:
    """What the stand-in reviewer did."""

    queue: int = 0
    """Rows the review queue showed (false_positive and uncertain labels on hits)."""
    reviewed: int = 0
    confirmed: int = 0
    passed_traps: int = 0
    """Judge said correct, the labels say the answer does not serve."""
    flagged_good: int = 0
    """Judge said false_positive (or uncertain), the labels say it serves."""


@dataclass
class PassOne:
    tally: Tally
    review: Review
    judge_flagged: dict[str, int]
    """Served semantic hits the judge labelled false, per namespace."""
    verdicts: list[Verdict]
    """The ledger after the reviews (newest first)."""
    embedder: CacheSettings
    """The pass-1 gateway's cache settings (its embedder measured the floor)."""


def _reviewable(verdict: Verdict, labels: Labels) -> bool:
    job = verdict.job
    return (
        verdict.source == "judge"
        and job_kind(job) in ("hit", "near_miss", "shadow")
        and labels.knows(job.cached_prompt)
        and labels.knows(job.new_prompt)
    )


async def review(
    http: httpx.AsyncClient, admin_key: str, verdicts: list[Verdict], labels: Labels
) -> Review:
    """Label every judge verdict on a workload pair through the review route."""
    done = Review()
    admin = {"authorization": f"Bearer {admin_key}"}
    queue = await http.get("/admin/review-queue", params={"limit": 500}, headers=admin)
    queue.raise_for_status()
    done.queue = len(queue.json()["data"])
    for verdict in verdicts:
        if not _reviewable(verdict, labels):
            continue
        correct = labels.same_answer(verdict.job.cached_prompt, verdict.job.new_prompt)
        reply = await http.post(
            f"/admin/verdicts/{verdict.id}/review",
            json={"correct": correct, "comment": REVIEW_NOTE},
            headers=admin,
        )
        reply.raise_for_status()
        done.reviewed += 1
        if correct == (verdict.verdict == "correct"):
            done.confirmed += 1
        elif correct:
            done.flagged_good += 1
        else:
            done.passed_traps += 1
    return done


def _judge_flagged(verdicts: list[Verdict]) -> dict[str, int]:
    found: dict[str, int] = {}
    for verdict in verdicts:
        hit = verdict.source == "judge" and job_kind(verdict.job) == "hit"
        if hit and verdict.verdict == "false_positive":
            found[verdict.job.namespace] = found.get(verdict.job.namespace, 0) + 1
    return found


async def pass_one(args: argparse.Namespace, upstream: int, port: int, groups: Workload) -> PassOne:
    admin_key = secrets.token_urlsafe(24)  # this process's own, for the review route
    settings = demo_settings(upstream, port, args.threshold, admin_key=admin_key)
    async with gateway(settings) as (app, http):
        tally = await replay(
            app, http, groups, {ns: ns for ns in groups}, seed=args.seed,
            concurrency=args.concurrency,
        )  # fmt: skip
        auditor = app.state.auditor
        judged = await auditor.verdicts(limit=None)
        done = await review(http, admin_key, judged, Labels.of(groups))
        verdicts = await auditor.verdicts(limit=None)
    return PassOne(tally, done, _judge_flagged(judged), verdicts, settings.cache)


async def pass_two(
    args: argparse.Namespace, upstream: int, port: int, groups: Workload, verifier: Path | None
) -> Tally:
    """``groups`` through a fresh gateway (audits off: only the verifier decides), in
    namespaces of their own."""
    options = None
    if verifier is not None:
        # a generous timeout: the demo measures the model, not this machine's load
        options = {"model": str(verifier), "mode": "serve", "timeout_ms": 2000.0}
    settings = demo_settings(upstream, port, args.threshold, options, audits=False)
    async with gateway(settings) as (app, http):
        return await replay(
            app, http, groups, {ns: f"{ns}-pass2" for ns in groups}, seed=args.seed,
            concurrency=args.concurrency,
        )  # fmt: skip


async def run_learn(args: argparse.Namespace) -> int:
    """The whole loop; prints the report."""
    from audit.errors import InputError
    from proxy.commands.common import fail
    from proxy.demo_training import gate, train
    from proxy.fake_upstream import create_fake_upstream

    quiet()
    started = time.monotonic()
    first, second = load_workload(FIRST_WORKLOAD), load_workload(SECOND_WORKLOAD)
    upstream, *ports = free_ports(5)
    say = _progress(args)
    with tempfile.TemporaryDirectory(prefix="vetcache-learn-") as scratch:
        folder = Path(scratch)
        async with serve_app(create_fake_upstream(), upstream):
            say(f"pass 1: workload.json, threshold {args.threshold}, no verifier")
            one = await pass_one(args, upstream, ports[0], first)
            say("training a verifier from the ledger")
            try:
                trained = await train(args, one.verdicts, one.embedder, folder)
            except InputError as exc:
                return fail(
                    "demo", f"cannot train on pass 1's ledger: {'; '.join(exc.errors[:3])}", 1
                )
            say("gating it")
            gated = await gate(args, trained, second, folder)
            say("pass 2: workload-learn.json without a verifier, with the base, with the trained")
            runs = {"before": await pass_two(args, upstream, ports[1], second, None)}
            if trained.base_is_verifier:  # the model in force, for comparison
                runs["base"] = await pass_two(args, upstream, ports[3], second, Path(trained.base))
            runs["after"] = await pass_two(args, upstream, ports[2], second, trained.folder)
    print(learn_report(args, one, trained, gated, runs))
    print(f"(finished in {time.monotonic() - started:.0f} s)", file=sys.stderr)
    return 0


def _progress(args: argparse.Namespace) -> Any:
    def say(message: str) -> None:
        if not args.no_progress:
            print(f"vetcache demo --learn: {message}...", file=sys.stderr)

    return say
