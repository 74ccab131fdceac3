"""The README stays true: every setting is documented, the set-up commands are what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

from pytest_k8sdr.config import OPTIONS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_settings_table() -> None:
    for option in OPTIONS:
        row = f"| {option.name} | `{option.cli_flag}` | `{option.env_var}` | `{option.ini_key}` |"
        assert row in README, f"README's settings table lacks {option.name}"


def test_the_two_setup_commands_are_what_ci_runs() -> None:
    commands = re.findall(r"^(bash ci/setup && \.venv/bin/pytest.*)$", README, re.MULTILINE)
    assert "bash ci/setup && .venv/bin/pytest experiments/" in commands
    assert "bash ci/setup && .venv/bin/pytest" in commands
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash ci/setup" in ci
    assert ".venv/bin/pytest -p no:cacheprovider\n" in ci
    assert ".venv/bin/pytest -p no:cacheprovider experiments/" in ci


def test_every_fixture_in_the_table_exists(pytestconfig: object) -> None:
    import pytest_k8sdr.plugin as plugin
    import pytest_k8sdr.plugin_safety as safety

    table = README.split("## Fixtures", 1)[1].split("\n## ", 1)[0]
    names = re.findall(r"^\| `(\w+)` \|", table, re.MULTILINE)
    assert names
    for name in names:
        assert hasattr(plugin, name) or hasattr(safety, name), f"README names fixture {name}"


def test_the_example_experiment_is_the_real_one() -> None:
    section = README.split("## What an experiment looks like", 1)[1]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    experiment = (ROOT / "experiments" / "test_node_failure.py").read_text()
    assert example.strip() in experiment
