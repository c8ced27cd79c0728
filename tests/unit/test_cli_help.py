"""The command line as ``--help`` shows it: every subcommand of one shape, every option with
help text, and its default where it has one."""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest

from proxy.cli import COMMANDS, build_parser


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    [group] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(group.choices)


def test_every_command_module_has_the_one_shape() -> None:
    for command in COMMANDS:
        assert isinstance(command.NAME, str) and isinstance(command.HELP, str), command
        assert callable(command.add_arguments) and callable(command.run), command
    assert sorted(subparsers()) == sorted(c.NAME for c in COMMANDS)


@pytest.mark.parametrize("name", sorted(subparsers()))
def test_every_option_has_help_and_shows_its_default(name: str) -> None:
    parser = subparsers()[name]
    text = parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"vetcache {name}: {action.dest} has no help text"
        if action.option_strings and action.default not in (None, False):
            assert "default" in parser._get_formatter()._expand_help(action), (
                f"vetcache {name} {action.option_strings[0]}: its default is not shown"
            )
    assert "(default: None)" not in text and "(default: False)" not in text


def test_version_flag() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        build_parser().parse_args(["--version"])
    assert done.value.code == 0 and out.getvalue().startswith("vetcache ")
