"""The `k8sdr` command: every sub-command and every option says what it does."""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Iterator

import pytest

from pytest_k8sdr import cli
from pytest_k8sdr.sim import cli as sim_cli


def _parsers(
    parser: argparse.ArgumentParser, path: str = "k8sdr"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:  # argparse offers no public walk of its sub-parsers
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def test_every_option_of_every_sub_command_has_a_help_text() -> None:
    seen = []
    walk = itertools.chain(_parsers(cli._parser()), _parsers(sim_cli._parser(), "k8sdr sim"))
    for path, parser in walk:
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            name = "/".join(action.option_strings) or action.dest
            seen.append(f"{path} {name}")
            assert action.help, f"{path} {name}: no help text"
            assert action.help != argparse.SUPPRESS, f"{path} {name}: hidden"
    assert "k8sdr recover --api-deadline" in seen
    assert "k8sdr sim up --workers" in seen
    assert "k8sdr sim node name" in seen


def test_help_shows_each_option_with_its_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["recover", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--rejoin-timeout REJOIN_TIMEOUT" in out
    assert "seconds to wait for an isolated node to re-register" in out
