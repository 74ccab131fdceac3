"""The durable store: a restarted control plane resumes its objects and resourceVersions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubernetes import client
from simapi_support import make_api_client

from pytest_k8sdr.sim.apimachinery.errors import ApiError
from pytest_k8sdr.sim.apiserver.storage.durable import LOG, SNAPSHOT, read_store
from pytest_k8sdr.sim.controlplane.store import Store
from pytest_k8sdr.sim.launcher import SimCluster


def _cm(name: str, value: str = "1") -> dict[str, object]:
    return {"metadata": {"name": name}, "data": {"k": value}}


def test_a_reopened_store_has_every_object_and_continues_the_counter(tmp_path: Path) -> None:
    first = Store(store_dir=tmp_path)
    first.create("configmaps", "default", _cm("a"))
    first.create("configmaps", "default", _cm("gone"))
    first.update(
        "configmaps",
        "default",
        "a",
        {**first.get("configmaps", "default", "a"), "data": {"k": "2"}},
    )
    first.delete("configmaps", "default", "gone")
    svc = first.create(
        "services",
        "default",
        {"metadata": {"name": "web"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}},
    )
    uid = first.get("configmaps", "default", "a")["metadata"]["uid"]
    rv = first.resource_version
    first.storage.close_durable()

    second = Store(store_dir=tmp_path)
    assert second.resource_version == rv
    again = second.get("configmaps", "default", "a")
    assert again["data"] == {"k": "2"}
    assert again["metadata"]["uid"] == uid
    assert second.storage.where_uid(uid) == ("configmaps", "default", "a")
    with pytest.raises(ApiError) as gone:
        second.get("configmaps", "default", "gone")
    assert gone.value.code == 404
    # Bootstrap objects are not created twice; the next write takes the next resourceVersion.
    assert second.count("namespaces") == 4
    nxt = second.create("configmaps", "default", _cm("b"))
    assert int(nxt["metadata"]["resourceVersion"]) == rv + 1
    # The restored Service still holds its nodePort: asking for it again is refused.
    port = svc["spec"]["ports"][0]["nodePort"]
    with pytest.raises(ApiError) as taken:
        second.create(
            "services",
            "default",
            {
                "metadata": {"name": "other"},
                "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": port}]},
            },
        )
    assert taken.value.code == 422
    second.storage.close_durable()


def test_a_watch_from_before_the_restart_is_410_and_from_the_restart_rv_is_fine(
    tmp_path: Path,
) -> None:
    first = Store(store_dir=tmp_path)
    old_rv = first.create("configmaps", "default", _cm("a"))["metadata"]["resourceVersion"]
    first.create("configmaps", "default", _cm("b"))
    rv = first.resource_version
    first.storage.close_durable()

    second = Store(store_dir=tmp_path)
    with pytest.raises(ApiError) as expired:
        second.storage.watch("configmaps", "default", resource_version=old_rv)
    assert expired.value.code == 410
    w = second.storage.watch("configmaps", "default", resource_version=str(rv))
    second.create("configmaps", "default", _cm("c"))
    assert b'"name":"c"' in w.queue.get_nowait()  # type: ignore[operator]
    second.storage.close_durable()


def test_a_torn_last_record_is_ignored_and_a_damaged_snapshot_is_refused(tmp_path: Path) -> None:
    first = Store(store_dir=tmp_path)
    first.create("configmaps", "default", _cm("a"))
    rv = first.resource_version
    first.storage.close_durable()
    with (tmp_path / LOG).open("ab") as fh:
        fh.write(b"%d\tA\tconfigmaps\tdefault\ttorn\t{" % (rv + 1))
    assert read_store(tmp_path)[0] == rv
    (tmp_path / SNAPSHOT).write_bytes(b"not a header\n")
    with pytest.raises(ValueError, match="line 1 is not a snapshot header"):
        read_store(tmp_path)


def test_the_log_is_compacted_into_a_snapshot(tmp_path: Path) -> None:
    store = Store(store_dir=tmp_path)
    durable = store.storage.durable
    assert durable is not None
    durable.compact_bytes = 4096
    for n in range(200):
        store.create("configmaps", "default", _cm(f"c{n}", "x" * 50))
    # Compacted at least once: a snapshot exists and the log holds only the latest commits.
    assert (tmp_path / SNAPSHOT).exists()
    assert len((tmp_path / LOG).read_bytes().splitlines()) < 200
    rv = store.resource_version
    store.storage.close_durable()
    restored_rv, objects = read_store(tmp_path)
    assert restored_rv == rv
    assert sum(1 for k in objects if k[0] == "configmaps") == 200


def test_a_restarted_control_plane_serves_the_same_objects_and_nodes_stay_ready(
    tmp_path: Path,
) -> None:
    """The whole process restart: same URL, token and CA; nodes keep their Lease; RVs go on."""
    cluster = SimCluster.start(tmp_path / "c", workers=1)
    try:
        api = make_api_client(cluster)
        core = client.CoreV1Api(api)
        made = core.create_namespaced_config_map("default", _cm("keep"))
        before = int(made.metadata.resource_version)
        core.create_namespaced_config_map("default", _cm("later"))
        cluster.stop_control_plane()
        assert cluster.control_plane_state() == "stopped"
        assert not cluster.running()
        # Another process (`k8sdr recover`) finds the stopped control plane and restarts it.
        attached = SimCluster.attach(cluster.state_dir)
        attached.start_control_plane()
        assert cluster.control_plane_state() == "running" or attached.running()
        got = core.read_namespaced_config_map("keep", "default")
        assert got.metadata.uid == made.metadata.uid
        after = core.create_namespaced_config_map("default", _cm("next"))
        assert int(after.metadata.resource_version) > before
        # A watch from before the restart is 410 Gone: the client must re-list.
        resp = core.list_namespaced_config_map(
            "default",
            watch=True,
            resource_version=str(before),
            timeout_seconds=2,
            _preload_content=False,
        )
        first = json.loads(
            resp.readline() if hasattr(resp, "readline") else resp.data.split(b"\n")[0]
        )
        resp.release_conn()
        assert first["type"] == "ERROR"
        assert first["object"]["code"] == 410
        cluster.wait_nodes_ready(cluster.node_names(), timeout=20)
        api.close()
    finally:
        cluster.stop()
    assert not cluster.running()
