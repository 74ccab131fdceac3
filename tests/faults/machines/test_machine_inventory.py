"""The machine inventory: YAML and flat settings, validated before any machine is touched."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_k8sdr.errors import ConfigError
from pytest_k8sdr.faults.machines import (
    CommandSpec,
    DockerSpec,
    Machines,
    Secret,
    SimSpec,
    SshSpec,
    inventory_from_settings,
    load_inventory,
    parse_inventory,
)
from pytest_k8sdr.faults.machines import inventory as inventory_module
from pytest_k8sdr.faults.machines.presets import HEAL, K3S, PARTITION
from pytest_k8sdr.undo import UndoStack


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "id_ed25519"
    path.write_text("not read until connecting\n")
    return path


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "machines.yaml"
    path.write_text(text)
    return path


def test_a_yaml_inventory_gives_one_frozen_spec_per_node(tmp_path: Path, key: Path) -> None:
    path = write(
        tmp_path,
        f"""
defaults:
  driver: ssh
  user: ubuntu
  key: {key}
  sudo: yes
  api_server: 10.0.0.10:6443
  power_on: [ipmitool, -H, "{{bmc}}", chassis, power, "on"]
  jump: ops@bastion.example:2222
nodes:
  worker-1:
    host: 10.0.0.11
    preset: k3s
    vars: {{bmc: 10.0.1.11}}
    commands:
      stop_kubelet: systemctl stop my-kubelet
  kind-worker:
    driver: docker
    cluster: kind
  k8sdr-worker2:
    driver: sim
  bmc-node:
    driver: command
    address: 10.0.0.12
    commands:
      kill: ipmitool -H {{address}} power off
      start: ipmitool -H {{address}} power on
""",
    )
    inventory = load_inventory(path)

    ssh = inventory.spec_for("worker-1")
    assert isinstance(ssh, SshSpec)
    assert (ssh.login.host, ssh.login.port, ssh.login.user, ssh.login.key) == (
        "10.0.0.11",
        22,
        "ubuntu",
        key,
    )
    assert ssh.sudo is True
    assert ssh.accept_unknown_host_keys_INSECURE is False
    assert ssh.jump is not None
    assert (ssh.jump.host, ssh.jump.port, ssh.jump.user) == ("bastion.example", 2222, "ops")
    assert ssh.commands["stop_kubelet"].template == "systemctl stop my-kubelet"
    assert ssh.commands["start_kubelet"] == K3S["start_kubelet"]
    assert ssh.commands["partition"].template == PARTITION
    assert ssh.commands["heal"].template == HEAL
    assert ssh.power_on is not None
    assert ssh.power_on.render_argv({"bmc": "10.0.1.11"})[:3] == ["ipmitool", "-H", "10.0.1.11"]
    with pytest.raises(AttributeError):
        ssh.sudo = False  # type: ignore[misc]

    docker = inventory.spec_for("kind-worker")
    assert isinstance(docker, DockerSpec)
    assert docker.cluster == "kind"
    assert isinstance(inventory.spec_for("k8sdr-worker2"), SimSpec)
    command = inventory.spec_for("bmc-node")
    assert isinstance(command, CommandSpec)
    assert command.address == "10.0.0.12"


def test_secrets_never_show_in_repr_or_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NODE_SSH_PASSWORD", "hunter2-from-env")
    inventory = parse_inventory(
        {
            "nodes": {
                "w1": {"driver": "ssh", "host": "h1", "password": "hunter2-inline"},
                "w2": {"driver": "ssh", "host": "h2", "password_env": "NODE_SSH_PASSWORD"},
            }
        }
    )
    w1, w2 = inventory.spec_for("w1"), inventory.spec_for("w2")
    assert isinstance(w1, SshSpec)
    assert isinstance(w2, SshSpec)
    assert w1.login.password is not None
    assert w2.login.password is not None
    assert w1.login.password.reveal() == "hunter2-inline"
    assert w2.login.password.reveal() == "hunter2-from-env"
    for text in (repr(inventory), str(w1), repr(w2), f"{w1.login.password}"):
        assert "hunter2" not in text
    assert repr(Secret("x")) == "Secret('***')"


BAD: list[tuple[dict[str, Any], str]] = [
    ({"nodes": {"w1": {"driver": "ssh"}}}, r"node 'w1': host: required, missing"),
    (
        {"nodes": {"w1": {"driver": "ssh", "host": "h", "hots": "x"}}},
        r"node 'w1': unknown key\(s\) hots for the ssh driver",
    ),
    (
        {"nodes": {"w1": {"driver": "ssh", "host": "h", "key": "/nonexistent/id"}}},
        r"node 'w1': key: no such file: /nonexistent/id",
    ),
    (
        {"nodes": {"w1": {"driver": "ssh", "host": "h", "connect_timeout": "soon"}}},
        r"node 'w1': connect_timeout: expected a number of seconds, got 'soon'",
    ),
    (
        {"nodes": {"w1": {"driver": "ssh", "host": "h", "command_timeout": 0}}},
        r"command_timeout: expected a positive number",
    ),
    (
        {"nodes": {"w1": {"driver": "ssh", "host": "h", "sudo": "maybe"}}},
        r"node 'w1': sudo: expected true or false",
    ),
    (
        {"nodes": {"w1": {"driver": "ssh", "host": "h", "preset": "upstart"}}},
        r"node 'w1': preset: unknown preset 'upstart'",
    ),
    (
        {"nodes": {"w1": {"driver": "ssh", "host": "h", "password_env": "K8SDR_NOT_SET_X"}}},
        r"node 'w1': password_env: environment variable K8SDR_NOT_SET_X is not set",
    ),
    (
        {"nodes": {"w1": {"driver": "ssh", "host": "h", "commands": {"heal": "x {api_host}"}}}},
        r"node 'w1': commands.heal: uses \{api_host\}/\{api_port\}: set api_server",
    ),
    (
        {"nodes": {"w1": {"driver": "command", "commands": {"kill": "off {bmc}"}}}},
        r"node 'w1': commands.kill: unknown placeholder\(s\) \{bmc\}",
    ),
    (
        {"nodes": {"w1": {"driver": "command", "commands": {"explode": "x"}}}},
        r"node 'w1': commands.explode: unknown action",
    ),
    (
        {"nodes": {"w1": {"driver": "command", "commands": {"kill": ""}}}},
        r"node 'w1': commands.kill: expected a command",
    ),
    ({"nodes": {"w1": {"driver": "vm"}}}, r"node 'w1': driver: unknown driver 'vm'"),
    ({"nodes": {"w1": {}}}, r"node 'w1': driver: required, missing"),
    ({"defaults": {"drvier": "sim"}}, r"defaults: unknown key\(s\) drvier"),
    ({"nodes": ["w1"]}, r"nodes: expected a mapping"),
    ({"machines": {}}, r"unknown top-level key\(s\) machines"),
    (
        {"defaults": {"driver": "docker", "timeout": -1}},
        r"node '<any unlisted node>': timeout: expected a positive number",
    ),
    (
        {"nodes": {"w1": {"driver": "ssh", "host": "h", "jump": {"host": "j", "pass": "x"}}}},
        r"node 'w1': jump: unknown key\(s\) pass",
    ),
    (
        {"nodes": {"w1": {"driver": "ssh", "host": "h", "port": 70000}}},
        r"node 'w1': port: expected a TCP port",
    ),
]


@pytest.mark.parametrize(("data", "message"), BAD)
def test_bad_inventories_name_the_node_and_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_inventory(data, source="inv.yaml")


def test_unlisted_nodes_use_defaults_only_for_drivers_that_need_nothing_per_node() -> None:
    sim = parse_inventory({"defaults": {"driver": "sim", "state_dir": "/tmp/sim"}})
    spec = sim.spec_for("k8sdr-worker7")
    assert spec == SimSpec("k8sdr-worker7", Path("/tmp/sim"))

    ssh = parse_inventory(
        {"defaults": {"driver": "ssh", "preset": "none"}, "nodes": {"w1": {"host": "h"}}},
        source="inv.yaml",
    )
    with pytest.raises(ConfigError, match=r"node 'w9' has no machine in inv.yaml; the ssh driver"):
        ssh.spec_for("w9")
    machines = Machines(ssh, UndoStack())
    with pytest.raises(ConfigError, match=r"'w8'.*'w9'"):
        machines.check(["w1", "w8", "w9"])
    assert machines["w1"].node == "w1"
    assert machines["w1"] is machines["w1"]


def test_flat_settings_are_strings_and_override_the_files_defaults(tmp_path: Path) -> None:
    flat = inventory_from_settings(
        {"driver": "docker", "cluster": "kind", "timeout": "30", "stop_timeout": "2"},
        source="ini",
    )
    spec = flat.spec_for("kind-worker2")
    assert spec == DockerSpec("kind-worker2", cluster="kind", timeout=30.0, stop_timeout=2)

    path = write(
        tmp_path,
        "defaults: {driver: ssh, user: a, preset: none}\nnodes: {w1: {host: h1}}\n",
    )
    merged = inventory_from_settings({"inventory": str(path), "user": "b", "sudo": "on"})
    w1 = merged.spec_for("w1")
    assert isinstance(w1, SshSpec)
    assert (w1.login.user, w1.sudo) == ("b", True)
    with pytest.raises(ConfigError, match=r"machines.yaml with settings: node 'w1': sudo"):
        inventory_from_settings({"inventory": str(path), "sudo": "perhaps"})


def test_an_unreadable_inventory_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_inventory(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_inventory(write(tmp_path, "nodes: [unclosed\n"))


def test_the_documented_example_is_valid(key: Path) -> None:
    doc = inventory_module.__doc__ or ""
    example = textwrap.dedent(doc.split("::\n", 1)[1].split("\nFlat settings", 1)[0])
    inventory = parse_inventory(yaml.safe_load(example.replace("~/.ssh/id_ed25519", str(key))))
    worker = inventory.spec_for("worker-1")
    assert isinstance(worker, SshSpec)
    assert worker.power_on is not None
    assert "-H 10.0.1.11 " in worker.power_on.render_shell({**worker.vars, "node": "worker-1"})
    assert isinstance(inventory.spec_for("kind-worker"), DockerSpec)
