"""Backup drivers: the simulator's snapshot of its store (etcdctl's), and any CLI's templates."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

from pytest_k8sdr.errors import ConfigError
from pytest_k8sdr.faults.backup import BackupError, Backups, BackupSpec, parse_backup
from pytest_k8sdr.faults.controlplane import ControlPlane
from pytest_k8sdr.faults.machines import parse_inventory
from pytest_k8sdr.sim import SimCluster
from pytest_k8sdr.undo import UndoStack

NS = "default"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    started = SimCluster.start(tmp_path_factory.mktemp("backup"), workers=1, profile="fast")
    try:
        yield started
    finally:
        SimCluster.attach(started.state_dir).stop()


@pytest.fixture(scope="module")
def core(sim: SimCluster) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(sim.kubeconfig_path)))


@pytest.fixture
def stack() -> Iterator[UndoStack]:
    undo = UndoStack()
    yield undo
    undo.unwind()


def sim_backups(sim: SimCluster, stack: UndoStack, tmp_path: Path) -> Backups:
    plane = ControlPlane.for_backend("sim", stack, sim=sim)
    return Backups(BackupSpec("sim"), stack, tmp_path, sim=sim, control_plane=plane)


def config_map(name: str, value: str) -> dict[str, object]:
    return {"metadata": {"name": name}, "data": {"value": value}}


def test_a_restored_snapshot_brings_back_what_was_deleted_and_drops_what_came_after(
    sim: SimCluster, core: k8s.CoreV1Api, stack: UndoStack, tmp_path: Path
) -> None:
    backups = sim_backups(sim, stack, tmp_path)
    kept = core.create_namespaced_config_map(NS, config_map("kept", "before"))
    taken = backups.save(namespaces=[NS])
    assert taken.file.is_file()
    assert taken.objects
    assert taken.resource_version
    core.delete_namespaced_config_map("kept", NS)
    core.create_namespaced_config_map(NS, config_map("after", "later"))
    seen = int(core.list_namespaced_config_map(NS).metadata.resource_version)

    backups.restore(taken)

    back = core.read_namespaced_config_map("kept", NS)
    assert back.metadata.uid == kept.metadata.uid
    assert back.data == {"value": "before"}
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("after", NS)
    assert gone.value.status == 404
    # The revision went on above every one a client saw (etcdutl --bump-revision).
    assert int(core.list_namespaced_config_map(NS).metadata.resource_version) > seen
    assert sim.running()
    assert stack.pending == []
    sim.wait_nodes_ready(sim.node_names(), timeout=30)
    core.delete_namespaced_config_map("kept", NS)


def test_a_watch_from_before_the_restore_is_gone_so_its_client_relists(
    sim: SimCluster, core: k8s.CoreV1Api, stack: UndoStack, tmp_path: Path
) -> None:
    backups = sim_backups(sim, stack, tmp_path)
    taken = backups.save()
    before = core.list_namespaced_config_map(NS).metadata.resource_version
    backups.restore(taken)
    with pytest.raises(ApiException) as expired:
        for _ in k8s_watch.Watch().stream(
            core.list_namespaced_config_map, NS, resource_version=before, timeout_seconds=5
        ):
            pass
    assert expired.value.status == 410
    sim.wait_nodes_ready(sim.node_names(), timeout=30)


def test_a_damaged_snapshot_is_refused_before_the_control_plane_stops(
    sim: SimCluster, stack: UndoStack, tmp_path: Path
) -> None:
    backups = sim_backups(sim, stack, tmp_path)
    taken = backups.save(name="damaged")
    taken.file.write_bytes(b"not a snapshot\n")
    with pytest.raises(BackupError, match="line 1 is not a snapshot header"):
        backups.restore(taken)
    assert sim.running()
    assert stack.pending == []


def test_command_templates_get_the_backup_s_name_file_and_namespaces(
    tmp_path: Path, stack: UndoStack
) -> None:
    kept = tmp_path / "bucket"
    kept.mkdir()
    restored = tmp_path / "restored"
    spec = parse_backup(
        {
            "save": "printf %s {namespaces} > {bucket}/{name}",
            "restore": ["cp", "{bucket}/{name}", str(restored)],
            "delete": "rm -f {bucket}/{name}",
            "vars": {"bucket": str(kept)},
        },
        "inventory",
    )
    assert spec is not None
    backups = Backups(spec, stack, tmp_path / "files")
    taken = backups.save(namespaces=["web", "db"], name="drill-1")
    assert (kept / "drill-1").read_text() == "web,db"
    (entry,) = stack.pending
    assert entry.record.kind == "backup"
    assert entry.description == "delete backup drill-1"
    backups.restore(taken)
    assert restored.read_text() == "web,db"
    stack.unwind()  # teardown deletes the backup the CLI kept
    assert not (kept / "drill-1").exists()


def test_a_restore_that_needs_the_control_plane_down_gets_it_stopped_and_started(
    tmp_path: Path, stack: UndoStack
) -> None:
    down = tmp_path / "down"
    inventory = parse_inventory(
        {
            "control_plane": {"stop": f"touch {down}", "start": f"rm -f {down}"},
            "backup": {
                "save": "true",
                "restore": "test -e {down}",  # etcdctl restores only with the API server down
                "stop_control_plane": True,
                "vars": {"down": str(down)},
            },
        }
    )
    assert inventory.backup is not None
    plane = ControlPlane.for_backend("kubeconfig", stack, commands=inventory.control_plane)
    backups = Backups(inventory.backup, stack, tmp_path, control_plane=plane)
    backups.restore(backups.save())
    assert not down.exists()
    assert stack.pending == []


def test_a_failing_command_says_how_it_failed(tmp_path: Path, stack: UndoStack) -> None:
    spec = parse_backup({"save": "echo no bucket >&2; exit 3", "restore": "true"}, "inventory")
    assert spec is not None
    with pytest.raises(BackupError, match="save backup drill: /bin/sh exited with 3: no bucket"):
        Backups(spec, stack, tmp_path).save(name="drill")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"save": "true"}, "backup: restore: required for the command driver, missing"),
        (
            {"save": "x {bucket}", "restore": "true"},
            r"backup: save: unknown placeholder\(s\) \{bucket\}",
        ),
        ({"save": "true", "restore": "true", "keep": 1}, "backup: unknown key(s) keep"),
        ({"driver": "velero"}, "driver: unknown driver 'velero'; known: sim, command"),
        ({"driver": "sim", "save": "true"}, "backup: save: the sim driver takes no commands"),
        ({"save": "true", "restore": "true", "vars": {"name": "x"}}, "vars: name is filled by"),
        ({"save": "true", "restore": "true", "timeout": 0}, "timeout: expected a positive number"),
        (
            {"save": "true", "restore": "true", "stop_control_plane": "yes"},
            "expected true or false",
        ),
    ],
)
def test_bad_config_is_a_clear_error_when_the_inventory_is_read(
    raw: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message) if "\\" not in message else message):
        parse_inventory({"backup": raw}, source="inventory.yaml")


def test_a_restore_that_stops_the_control_plane_needs_one(tmp_path: Path, stack: UndoStack) -> None:
    spec = parse_backup(
        {"save": "true", "restore": "true", "stop_control_plane": True}, "inventory"
    )
    assert spec is not None
    with pytest.raises(ConfigError, match="stops the control plane"):
        Backups(spec, stack, tmp_path)
