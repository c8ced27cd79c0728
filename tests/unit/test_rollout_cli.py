"""``vetcache rollout`` refuses bad input with one line and exit status 2, before it loads a
model or touches a store (the steps themselves: tests/integration/test_rollout.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["start", "--namespace", "ns"], "start needs --to NAME"),
        (["gate", "--namespace", "ns"], "gate needs --pairs FILE"),
        (["migrate", "--namespace", "ns", "--rate", "0"], "--rate must be > 0"),
        (["migrate", "--namespace", "ns", "--batch", "0"], "--batch must be >= 1"),
        (["status", "--namespace", "a b"], "not a namespace: 'a b'"),
        (["status", "--namespace", "ns"], "needs redis_url"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "vetcache.yaml"
    config.write_text("auth: {enabled: false}\n")  # no redis_url
    assert main(["rollout", *argv, "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vetcache: rollout: ") and message in err
    assert err.count("\n") == 1
