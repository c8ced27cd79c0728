"""Conversation pairs replayed under a context policy (``audit.conversations``) and by
``vetcache eval``, on the project's own fixture (tests/fixtures/conversation_pairs.jsonl)."""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from audit.conversations import EXACT, NEVER, apply_policy
from audit.pairs import Pair, load_pairs
from cache.schema import ContextPolicy
from cache.settings import CacheSettings
from proxy.cli import build_parser
from proxy.commands import evaluate


def parser() -> argparse.ArgumentParser:
    return build_parser()


FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "conversation_pairs.jsonl"
TRAPS = ("cancel-what", "fee-for-what", "order-number", "upgrade-or-night")


def keyed(policy: ContextPolicy) -> dict[str, Pair]:
    pairs = load_pairs(FIXTURE)
    ids = [json.loads(line)["id"] for line in FIXTURE.read_text().splitlines()]
    return dict(zip(ids, apply_policy(pairs, policy), strict=True))


def test_conversation_rows_are_read_with_their_messages() -> None:
    pairs = load_pairs(FIXTURE)
    assert len(pairs) == 9 and sum(p.label for p in pairs) == 5
    assert all(p.messages is not None and p.fixed is None for p in pairs)
    assert pairs[0].cohort == "irrelevant_history"


def test_last_user_serves_nothing_whose_history_differs() -> None:
    pairs = keyed("last_user")
    assert [name for name, p in pairs.items() if p.fixed != NEVER] == ["same-history-case"]


def test_last_turns_serves_a_trap_whose_difference_is_older_than_its_window() -> None:
    assert keyed("last_turns")["order-number"].fixed == EXACT


def test_standalone_never_serves_the_traps_and_serves_standalone_questions() -> None:
    pairs = keyed("standalone")
    assert all(pairs[name].fixed == NEVER for name in TRAPS)
    repeat = pairs["standalone-repeat"]
    assert repeat.fixed == EXACT and repeat.text_a == repeat.text_b
    paraphrase = pairs["standalone-paraphrase"]
    assert paraphrase.fixed is None
    assert paraphrase.text_b == "How can I reset my online banking password?"
    assert pairs["delivery-chatter"].fixed == NEVER  # a follow-up after another history


def test_full_compares_the_whole_conversation() -> None:
    pairs = keyed("full")
    assert all(pairs[name].fixed is None for name in TRAPS)
    assert "Cancel it." in pairs["cancel-what"].text_a
    assert "Ironbark" in pairs["cancel-what"].text_a


def test_a_text_pair_is_left_as_it_is() -> None:
    pair = Pair("a", "b", 1, "all", 2)
    assert apply_policy([pair], "standalone") == [pair]


def test_a_request_that_cannot_be_cached_never_meets() -> None:
    pair = Pair("", "", 0, "all", 2, messages=([{"role": "assistant", "content": "x"}],) * 2)
    assert apply_policy([pair], "last_user")[0].fixed == NEVER


async def similar_unless_fixed(
    pairs: Sequence[Pair], embedder: CacheSettings
) -> tuple[list[float], str]:
    """0.9 for every pair an embedding would decide."""
    return [0.9 if p.fixed is None else p.fixed for p in pairs], "fake"


@pytest.mark.parametrize(
    ("policy", "hit_rate"), [("last_user", "11.1%"), ("full", "88.9%"), ("standalone", "44.4%")]
)
async def test_eval_replays_conversation_pairs_under_a_policy(policy: str, hit_rate: str) -> None:
    args = parser().parse_args(
        ["eval", "--pairs", str(FIXTURE), "--context-policy", policy, "--thresholds", "0.85"]
    )
    out = io.StringIO()
    await evaluate.evaluate(args, similarities=similar_unless_fixed, out=out)
    text = out.getvalue()
    assert f"context policy {policy} (last_turns 2)" in text.splitlines()[0]
    overall = next(line for line in text.splitlines() if line.startswith("(overall)"))
    assert overall.split()[7] == hit_rate


def test_eval_defaults_to_the_gateways_context_policy() -> None:
    args = parser().parse_args(["eval", "--pairs", "p.jsonl"])
    assert (args.context_policy, args.last_turns) == ("last_user", 2)
