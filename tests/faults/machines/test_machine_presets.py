"""The default per-action commands: valid shell, and partition/heal idempotent.

iptables and systemctl are stand-ins on PATH that keep their state in files; nothing here
touches this machine's firewall or services.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pytest_k8sdr.faults.machines.presets import K3S, KIND_NODE, PRESETS, SYSTEMD

VARIABLES = {"node": "w1", "host": "10.0.0.11", "address": "10.0.0.11", "user": "u",
             "api_host": "10.0.0.10", "api_port": "6443"}  # fmt: skip

IPTABLES = """#!/bin/sh
# iptables stand-in: -C checks, -I inserts, -D deletes one copy (exit 1 when absent).
rules={rules}
op=$1; shift; rule="$*"
touch "$rules"
case $op in
  -C) grep -qxF -- "$rule" "$rules" ;;
  -I) echo "$rule" >> "$rules" ;;
  -D) grep -qxF -- "$rule" "$rules" || exit 1
      awk -v r="$rule" 'done || $0 != r {{print; next}} {{done=1}}' "$rules" > "$rules.new"
      mv "$rules.new" "$rules" ;;
esac
"""

SYSTEMCTL = """#!/bin/sh
# systemctl stand-in: is-active answers from a file, kill records the signal.
[ "$1" = is-active ] && exec test -e {root}/active
echo "$*" >> {root}/signals
"""


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_command_is_valid_shell(preset: str) -> None:
    for name, command in PRESETS[preset].items():
        script = command.render_shell(VARIABLES)
        done = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True)
        assert done.returncode == 0, f"{preset} {name}: {done.stderr}"


def run(script: str, bin_dir: Path) -> int:
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}
    return subprocess.run(["sh", "-c", script], env=env, check=False).returncode


def stub(bin_dir: Path, name: str, text: str) -> None:
    path = bin_dir / name
    path.write_text(text)
    path.chmod(0o755)


def test_partition_and_heal_are_idempotent(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    stub(tmp_path, "iptables", IPTABLES.format(rules=rules))
    partition = SYSTEMD["partition"].render_shell(VARIABLES)
    heal = SYSTEMD["heal"].render_shell(VARIABLES)

    assert run(partition, tmp_path) == 0
    assert run(partition, tmp_path) == 0  # a second partition adds no second copy
    assert rules.read_text().splitlines() == [
        "OUTPUT -d 10.0.0.10 -p tcp --dport 6443 -j DROP",
        "INPUT -s 10.0.0.10 -p tcp --sport 6443 -j DROP",
    ]
    rules.write_text(rules.read_text() * 2)  # even copies made by hand go
    assert run(heal, tmp_path) == 0
    assert rules.read_text() == ""
    assert run(heal, tmp_path) == 0  # healing a healed node is a no-op
    assert KIND_NODE["partition"] == SYSTEMD["partition"]
    assert K3S["heal"] == SYSTEMD["heal"]


@pytest.mark.parametrize(("preset", "unit"), [("systemd", "kubelet"), ("k3s", "k3s-agent")])
def test_thaw_signals_only_a_running_unit(tmp_path: Path, preset: str, unit: str) -> None:
    stub(tmp_path, "systemctl", SYSTEMCTL.format(root=tmp_path))
    thaw = PRESETS[preset]["thaw"].render_shell(VARIABLES)
    signals = tmp_path / "signals"

    assert run(thaw, tmp_path) == 0  # not running: nothing to resume
    assert not signals.exists()
    (tmp_path / "active").touch()
    assert run(thaw, tmp_path) == 0
    assert signals.read_text() == f"kill --signal=SIGCONT {unit}\n"
