"""`--help` of every command: a description, each option's default, examples, exit codes."""

from __future__ import annotations

import argparse

import pytest

from vscope_pipeline.cli import build_parser, main

COMMANDS = ("ingest", "sql", "simulate", "status", "doctor", "dev", "demo", "report")


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (commands,) = [
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    ]
    return dict(commands.choices)


def test_every_command_is_listed() -> None:
    assert sorted(_subparsers()) == sorted(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_lists_exit_codes(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "\nexample" in text
    assert f"vscope-pipeline {command}" in text.split("\nexample", 1)[1]
    assert "\nexit codes:\n  0  success\n  1  " in text
    assert (
        "\n  2  usage or configuration error: an invalid option, argument or setting;\n"
        "     nothing was written\n"
    ) in text


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_states_default(command: str) -> None:
    parser = _subparsers()[command]
    assert parser.description
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or not action.option_strings:
            continue
        assert action.help is not None, action.dest
        assert "default" in action.help or "(required)" in action.help, action.option_strings


def test_top_level_help_lists_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "exit codes:\n  0  success\n  1  a run or a check failed (see each command)\n" in text
