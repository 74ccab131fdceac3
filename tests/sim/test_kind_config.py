"""The cluster's shape from kind's own Cluster config: `k8sdr sim up --config FILE`."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from simapi_support import make_api_client

from pytest_k8sdr.sim import cli
from pytest_k8sdr.sim.kindconfig import KindConfigError, load_kind_config, parse_kind_config
from pytest_k8sdr.sim.launcher import SimCluster

ROOT = Path(__file__).resolve().parents[2]
CP_TAINT = ("node-role.kubernetes.io/control-plane", "", "NoSchedule")
CP_LABEL = ("node-role.kubernetes.io/control-plane", "")

ZONED = """\
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: zoned
networking:
  podSubnet: 10.244.0.0/16
nodes:
  - role: control-plane
  - role: worker
    labels:
      topology.kubernetes.io/zone: zone-a
      sim.k8sdr.io/cpu: "4"
      sim.k8sdr.io/memory: 16Gi
      tier: db
    extraPortMappings: [{containerPort: 30080, hostPort: 8080}]
  - role: worker
    labels:
      topology.kubernetes.io/zone: zone-b
      sim.k8sdr.io/max-pods: "20"
"""


def _doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4"}
    doc.update(changes)
    return doc


def test_the_ci_kind_config_is_the_simulators_default_cluster() -> None:
    config = load_kind_config(ROOT / "ci" / "kind-config.yaml")
    names = [n.name for n in config.nodes]
    assert names == ["k8sdr-control-plane", "k8sdr-worker", "k8sdr-worker2", "k8sdr-worker3"]
    control_plane, *workers = config.nodes
    assert control_plane.taints == (CP_TAINT,)
    assert CP_LABEL in control_plane.labels
    assert all(w.taints == () and w.labels == () and w.zone is None for w in workers)
    assert config.notes == (
        f"{ROOT / 'ci' / 'kind-config.yaml'}: kubeadmConfigPatches is kind's, ignored by the "
        "simulator",
    )


def test_roles_labels_zones_and_capacity_labels() -> None:
    config = parse_kind_config(yaml.safe_load(ZONED), "zoned.yaml")
    cp, db, other = config.nodes
    assert (cp.name, db.name, other.name) == (
        "zoned-control-plane",
        "zoned-worker",
        "zoned-worker2",
    )
    assert (db.zone, db.cpu, db.memory, db.max_pods) == ("zone-a", "4", "16Gi", 110)
    assert (other.zone, other.cpu, other.memory, other.max_pods) == ("zone-b", "2", "8Gi", 20)
    assert ("tier", "db") in db.labels
    assert config.notes == (
        "zoned.yaml: networking is kind's, ignored by the simulator",
        "zoned.yaml: nodes[1].extraPortMappings is kind's, ignored by the simulator",
    )


def test_kinds_defaults_one_untainted_control_plane_and_numbered_names() -> None:
    # No nodes: one control-plane node, which kind leaves untainted as there is no worker.
    (alone,) = parse_kind_config(_doc(), "f").nodes
    assert (alone.name, alone.taints, alone.labels) == ("k8sdr-control-plane", (), (CP_LABEL,))
    nodes = parse_kind_config(
        _doc(name="x", nodes=[{}, {"role": "control-plane"}, {"role": "worker"}]), "f"
    ).nodes
    assert [n.name for n in nodes] == ["x-control-plane", "x-control-plane2", "x-worker"]
    assert [n.taints for n in nodes] == [(CP_TAINT,), (CP_TAINT,), ()]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([1, 2], r"f: \(document\): expected a kind Cluster mapping, got list"),
        (_doc(kind="Config"), r"f: kind: expected Cluster, got 'Config'"),
        (_doc(apiVersion="kind.x-k8s.io/v1alpha3"), r"f: apiVersion: expected kind.x-k8s.io/v1a"),
        (_doc(workers=3), r"f: workers: not a field of kind's Cluster"),
        (_doc(name="Big_Name"), r"f: name: 'Big_Name' is not a cluster name"),
        (_doc(nodes=[]), r"f: nodes: expected a non-empty list"),
        (_doc(nodes=["worker"]), r"f: nodes\[0\]: expected a node mapping, got str"),
        (_doc(nodes=[{"role": "master"}]), r"f: nodes\[0\].role: expected one of control-plane"),
        (_doc(nodes=[{"cpu": 4}]), r"f: nodes\[0\].cpu: not a field of kind's Node"),
        (_doc(nodes=[{"labels": ["a"]}]), r"f: nodes\[0\].labels: expected a mapping, got list"),
        (
            _doc(nodes=[{"labels": {"sim.k8sdr.io/cpu": 4}}]),
            r"f: nodes\[0\].labels.sim.k8sdr.io/cpu: expected a string value, got 4",
        ),
        (
            _doc(nodes=[{"labels": {"sim.k8sdr.io/memory": "lots"}}]),
            r"f: nodes\[0\].labels.sim.k8sdr.io/memory: expected a quantity",
        ),
        (
            _doc(nodes=[{"labels": {"sim.k8sdr.io/max-pods": "0"}}]),
            r"f: nodes\[0\].labels.sim.k8sdr.io/max-pods: expected a positive integer, got '0'",
        ),
    ],
)
def test_a_malformed_config_names_the_file_and_the_field(doc: object, message: str) -> None:
    with pytest.raises(KindConfigError, match=r"^kind config " + message):
        parse_kind_config(doc, "f")


def test_unreadable_and_non_yaml_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(KindConfigError, match=rf"kind config {tmp_path}/nope.yaml: cannot be read"):
        load_kind_config(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: [Cluster\n")
    with pytest.raises(KindConfigError, match=rf"kind config {broken}: not YAML"):
        load_kind_config(broken)


def test_cli_refuses_a_bad_config_and_config_with_workers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "kind.yaml"
    bad.write_text(yaml.safe_dump(_doc(nodes=[{"role": "boss"}])))
    state = ["--state-dir", str(tmp_path / "state")]
    assert cli.main(["up", "--config", str(bad), *state]) == 2
    assert f"kind config {bad}: nodes[0].role: expected one of" in capsys.readouterr().err
    assert cli.main(["up", "--config", str(bad), "--workers", "2", *state]) == 2
    assert "not with --workers, --hollow-nodes or --zones" in capsys.readouterr().err
    assert not (tmp_path / "state" / "state.json").exists()


def test_sim_up_config_registers_the_files_nodes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "kind.yaml"
    config.write_text(textwrap.dedent(ZONED))
    state = tmp_path / "state"
    args = ["--state-dir", str(state)]
    assert cli.main(["up", "--config", str(config), *args]) == 0
    assert f"note: {config}: networking is kind's, ignored" in capsys.readouterr().err
    try:
        api = client.CoreV1Api(make_api_client(SimCluster.attach(state)))
        nodes = {n.metadata.name: n for n in api.list_node().items}
        assert sorted(nodes) == ["zoned-control-plane", "zoned-worker", "zoned-worker2"]
        cp, db, other = (nodes[n] for n in sorted(nodes))
        assert [(t.key, t.effect) for t in cp.spec.taints] == [(CP_TAINT[0], "NoSchedule")]
        assert cp.metadata.labels[CP_LABEL[0]] == ""
        assert db.metadata.labels["topology.kubernetes.io/zone"] == "zone-a"
        assert db.metadata.labels["tier"] == "db"
        assert (db.status.capacity["cpu"], db.status.capacity["memory"]) == ("4", "16Gi")
        assert db.status.allocatable["cpu"] == "4"
        assert other.metadata.labels["topology.kubernetes.io/zone"] == "zone-b"
        assert other.status.capacity["pods"] == "20"
        assert not other.spec.taints
    finally:
        assert cli.main(["down", *args]) == 0
