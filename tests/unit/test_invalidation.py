"""``cache.invalidation``: what a filter is, what it matches, and the line it logs (on the
in-process store and the failing fake); ``vetcache invalidate``'s refusals."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from cache.errors import StoreError
from cache.invalidation import Invalidation, invalidate
from cache.stores.faulty import FaultyStore
from cache.stores.memory import MemoryStore
from proxy.cli import main

FIELDS = {"id": "e1", "origin": "", "namespace": "n", "tenant": "t", "model": "m"}


def fields(**changes: Any) -> dict[str, Any]:
    return {**FIELDS, "created_at": time.time(), **changes}


@pytest.mark.parametrize(
    "conditions",
    [
        {},
        {"all": False},
        {"all": True, "tenant": "t"},
        {"all": 1},
        {"entry": "e1", "extra": 1},
        {"entry": "../e1"},
        {"namespace": "a:b"},
        {"created_before": "2026-01-01T00:00:00"},
    ],
)
def test_filters_that_do_not_say_clearly_which_entries_are_refused(
    conditions: dict[str, Any],
) -> None:
    with pytest.raises(ValidationError):
        Invalidation.model_validate(conditions)


def test_every_condition_given_must_hold() -> None:
    which = Invalidation(namespace="n", tenant="t", model="m")
    assert which.matches(fields())
    assert not which.matches(fields(tenant="u"))
    assert not which.matches(fields(model="other"))
    assert not which.matches(fields(namespace="other"))
    assert Invalidation.model_validate({"all": True}).matches(fields(namespace="any"))


def test_an_entry_id_names_the_entry_and_its_copies() -> None:
    which = Invalidation(entry="e1")
    assert which.matches(fields())
    assert which.matches(fields(id="copy", origin="e1"))
    assert not which.matches(fields(id="e2"))


def test_created_before_is_a_moment_in_any_zone_or_unix_seconds() -> None:
    noon = datetime(2026, 1, 31, 12, tzinfo=UTC).timestamp()
    for given in ("2026-01-31T13:00:00+01:00", noon, str(int(noon))):
        which = Invalidation.model_validate({"created_before": given})
        assert which.matches(fields(created_at=noon - 1))
        assert not which.matches(fields(created_at=noon))
    assert Invalidation.model_validate({"created_before": noon}).conditions() == {
        "created_before": "2026-01-31T12:00:00Z"
    }


async def test_one_line_says_who_what_and_how_many_or_that_it_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="vetcache.invalidation")
    store = FaultyStore(MemoryStore())
    which = Invalidation.model_validate({"all": True})
    assert await invalidate(store, which, "cli:ops") == 0
    store.down = True
    with pytest.raises(StoreError):
        await invalidate(store, which, "cli:ops")
    done, failed = caplog.records
    assert (done.levelno, done.__dict__["deleted"], done.__dict__["by"]) == (
        logging.INFO, 0, "cli:ops",
    )  # fmt: skip
    assert done.__dict__["invalidation"] == {"all": True}
    assert (failed.levelno, failed.__dict__["error"]) == (logging.WARNING, "StoreError")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "an empty filter is refused"),
        (["--all", "--namespace", "ns"], "'all' deletes every entry"),
        (["--entry", "a b"], "--entry "),
        (["--namespace", "a:b"], "--namespace "),
        (["--before", "2026-01-01T00:00:00"], "--before "),
        (["--namespace", "ns"], "needs redis_url"),
    ],
)
def test_the_command_refuses_bad_input_with_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Before it touches a store (the deletions: tests/integration/test_invalidation.py)."""
    config = tmp_path / "vetcache.yaml"
    config.write_text("auth: {enabled: false}\n")  # no redis_url
    assert main(["invalidate", *argv, "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vetcache: invalidate: ") and message in err
    assert err.count("\n") == 1
