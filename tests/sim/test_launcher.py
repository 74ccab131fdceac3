"""The launcher and `k8sdr sim` CLI: start, attach, node operations, stop, bad input."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from kubernetes import client
from simapi_support import all_controllers, make_api_client

from pytest_k8sdr.sim import cli
from pytest_k8sdr.sim.launcher import CONTROL_PLANE, SimCluster, SimLaunchError


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_cli_up_status_down(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    args = ["--state-dir", str(state)]
    assert cli.main(["up", "--workers", "0", *args]) == 0
    kubeconfig = capsys.readouterr().out.strip()
    assert kubeconfig == str(state / "kubeconfig")
    pid = json.loads((state / "state.json").read_text())["server"]["pid"]
    try:
        assert cli.main(["status", *args]) == 0
        assert "https://127.0.0.1:" in capsys.readouterr().out
        # A second `up` on the same state dir is refused, naming the running server.
        assert cli.main(["up", "--workers", "0", *args]) == 2
        assert f"already running from {state}" in capsys.readouterr().err
        assert cli.main(["node", "kill", "nope", *args]) == 2
        assert "unknown node 'nope'" in capsys.readouterr().err
        _switch_controllers(state, args, capsys)
    finally:
        assert cli.main(["down", *args]) == 0
    assert not _pid_alive(pid)
    assert cli.main(["status", *args]) == 1
    assert "no simulated cluster" in capsys.readouterr().err


def _switch_controllers(state: Path, args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """`k8sdr sim controller list|disable|enable` against the running server."""
    assert cli.main(["controller", "list", *args]) == 0
    listed = dict(line.split() for line in capsys.readouterr().out.splitlines())
    assert listed["scheduler"] == "on"
    assert listed["garbagecollector"] == "on"
    assert cli.main(["controller", "disable", "scheduler", *args]) == 0
    assert capsys.readouterr().out.strip() == "scheduler: off"
    cluster = SimCluster.attach(state)
    assert cluster.controllers()["scheduler"] is False
    assert cli.main(["controller", "disable", "scheduler", *args]) == 0
    assert capsys.readouterr().out.strip() == "scheduler: off (already)"
    assert cli.main(["controller", "disable", "schedular", *args]) == 2
    assert "unknown controller 'schedular'; accepted: " in capsys.readouterr().err
    assert cli.main(["controller", "enable", *args]) == 2
    assert "needs a controller name" in capsys.readouterr().err
    with pytest.raises(SimLaunchError, match=r"HTTP 400.*enabled"):
        cluster._client().request("PUT", "/k8sdr/v1/controllers/scheduler", {"enabled": "no"})
    assert cluster.set_controller("scheduler", enabled=True) is True
    assert cluster.controllers()["scheduler"] is True


def test_bad_input_is_refused_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert (
            cli.main(
                ["up", "--workers", "0", "--port", str(port), "--state-dir", str(tmp_path / "a")]
            )
            == 2
        )
        assert f"port {port} on 127.0.0.1 is in use" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="is not writable"):
        SimCluster.start(blocker / "state", workers=0)
    with pytest.raises(ValueError, match="unknown timing profile"):
        SimCluster.start(tmp_path / "b", workers=0, profile="slow")
    with pytest.raises(ValueError, match="workers"):
        SimCluster.start(tmp_path / "c", workers=-1)
    with pytest.raises(ValueError, match=r"zones: one non-empty zone per node.*\(3 in all\)"):
        SimCluster.start(tmp_path / "z", workers=2, zones=["zone-a", "zone-b"])
    assert cli.main(["up", "--workers", "1", "--zones", "a,", "--state-dir", str(tmp_path)]) == 2
    assert "zones: one non-empty zone per node" in capsys.readouterr().err
    with pytest.raises(SimLaunchError, match="unknown controller"):
        SimCluster.start(tmp_path / "d", workers=0, disabled_controllers=["no-such-controller"])
    with pytest.raises(SimLaunchError, match="no simulated cluster"):
        SimCluster.attach(tmp_path / "e")


def test_zones_label_each_node_from_its_kubelet(tmp_path: Path) -> None:
    zones = ["zone-a", "zone-b"]
    cluster = SimCluster.start(
        tmp_path / "sim", workers=1, zones=zones, disabled_controllers=all_controllers()
    )
    try:
        core = client.CoreV1Api(make_api_client(cluster))
        labels = {n.metadata.name: n.metadata.labels for n in core.list_node().items}
        assert labels[CONTROL_PLANE]["topology.kubernetes.io/zone"] == "zone-a"
        assert labels["k8sdr-worker"]["topology.kubernetes.io/zone"] == "zone-b"
    finally:
        cluster.stop()


def test_start_with_workers_and_node_operations(tmp_path: Path) -> None:
    cluster = SimCluster.start(tmp_path / "sim", workers=1, disabled_controllers=all_controllers())
    api = make_api_client(cluster)
    try:
        assert cluster.node_names() == [CONTROL_PLANE, "k8sdr-worker"]
        # Each launched cluster has its own address slot (never slot 0, kept for hand-run agents).
        assert cluster.slot >= 1
        assert cluster.node_address("k8sdr-worker") == f"127.{1 + cluster.slot}.0.2"
        core = client.CoreV1Api(api)
        nodes = {n.metadata.name: n for n in core.list_node().items}
        assert set(nodes) == {CONTROL_PLANE, "k8sdr-worker"}
        cp = nodes[CONTROL_PLANE]
        assert "node-role.kubernetes.io/control-plane" in cp.metadata.labels
        assert [t.key for t in cp.spec.taints] == ["node-role.kubernetes.io/control-plane"]
        attached = SimCluster.attach(cluster.state_dir)
        pid = json.loads((cluster.state_dir / "state.json").read_text())["agents"]["k8sdr-worker"][
            "pid"
        ]
        attached.freeze_node("k8sdr-worker")
        assert cluster.state_dir.joinpath("state.json").exists()
        assert SimCluster.attach(cluster.state_dir).node_state("k8sdr-worker") == "frozen"
        attached.thaw_node("k8sdr-worker")
        args = ["--state-dir", str(cluster.state_dir)]
        assert cli.main(["node", "kill", "k8sdr-worker", *args]) == 0
        attached = SimCluster.attach(cluster.state_dir)
        assert attached.node_state("k8sdr-worker") == "stopped"
        assert not _pid_alive(pid)
        attached.start_node("k8sdr-worker")
        assert attached.node_state("k8sdr-worker") == "running"
        with pytest.raises(ValueError, match="unknown node 'k8sdr-worker9'"):
            attached.kill_node("k8sdr-worker9")
        new_pid = json.loads((cluster.state_dir / "state.json").read_text())["agents"][
            "k8sdr-worker"
        ]["pid"]
        assert new_pid != pid
        assert _pid_alive(new_pid)
        attached.stop()
        assert not _pid_alive(new_pid)
    finally:
        api.close()
        cluster.stop()
        cluster.stop()  # idempotent


def test_a_restart_keeps_a_token_that_begins_with_a_dash() -> None:
    # secrets.token_urlsafe begins with '-' once in 64 draws; `--token -x` was then refused by
    # argparse ("expected one argument") and the stopped control plane never came back.
    from pytest_k8sdr.sim.controlplane.process import _parse_args
    from pytest_k8sdr.sim.launcher import _restart_args

    argv = _restart_args(["--state-dir", "/tmp/x", "--port", "0"], 6443, "-Ab_c")
    parsed = _parse_args(argv)
    assert (parsed.port, parsed.token) == (6443, "-Ab_c")
