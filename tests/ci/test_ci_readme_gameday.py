"""The README's game-day examples are valid: its ini settings and its machine inventory."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_k8sdr import config as cfg
from pytest_k8sdr.faults.machines.inventory import SshSpec, load_inventory

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## Game day on a staging cluster")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _block(section: str, language: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", section, re.S)
    assert len(blocks) >= 1, f"no {language} block in the game-day section"
    return str(blocks[0])


def test_the_ini_settings_are_known_and_valid(section: str) -> None:
    parser = configparser.ConfigParser()
    parser.read_string(_block(section, "ini"))
    ini = dict(parser["pytest"])
    unknown = {k for k in ini if k.removeprefix("k8sdr_") not in cfg.OPTIONS_BY_NAME}
    assert not unknown
    settings = cfg.resolve(ini=lambda key: ini.get(key))
    assert settings.backend == "kubeconfig"
    assert settings.context in settings.allowed_contexts
    assert settings.max_disrupted == 1


def test_the_inventory_loads(section: str, tmp_path: Path) -> None:
    inventory = _block(section, "yaml")
    # The files it names must exist to load: stand-ins here.
    for name in ("gameday_ed25519", "known_hosts"):
        (tmp_path / name).write_text("")
        inventory = inventory.replace(f"~/.ssh/{name}", str(tmp_path / name))
    path = tmp_path / "machines.yaml"
    path.write_text(inventory)
    loaded = load_inventory(path)
    machines = dict(loaded.machines)
    assert sorted(machines) == ["staging-worker-1", "staging-worker-2", "staging-worker-3"]
    spec = machines["staging-worker-1"]
    assert isinstance(spec, SshSpec)
    assert spec.login.host == "10.0.0.11"
    assert spec.power_on is not None


def test_the_commands_it_shows_exist(section: str) -> None:
    for flag in ("--check", "--cluster", "--kubeconfig", "--context", "--inventory"):
        assert flag in section
    shown = subprocess.run(
        [sys.executable, "-m", "pytest_k8sdr.cli", "recover", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    for flag in (
        "--check",
        "--cluster",
        "--kubeconfig",
        "--context",
        "--inventory",
        "--api-deadline",
    ):
        assert flag in shown.stdout


def test_the_options_it_names_exist(section: str) -> None:
    named = set(re.findall(r"--k8sdr-[a-z-]+", section))
    assert "--k8sdr-plan" in named
    shown = subprocess.run(
        [sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    missing = sorted(flag for flag in named if flag not in shown.stdout)
    assert not missing
