"""The dry run's twin: shaped after a simulated "staging" it reads and never writes to."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_k8sdr import Cluster
from pytest_k8sdr.backends import launch_sim
from pytest_k8sdr.journal import Journal, read_journal
from pytest_k8sdr.sim import SimCluster
from pytest_k8sdr.twin import Twin, read_target
from pytest_k8sdr.undo import UndoStack

WEB = {
    "metadata": {"name": "web"},
    "spec": {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "web:1"}]},
        },
    },
}


def outside_writes(sim: SimCluster, before: dict[tuple[str, str], int]) -> dict[str, int]:
    """Writes since `before` from anything but the simulator's own components (its audit)."""
    reads = {"get", "watch"}
    return {
        f"{agent} {verb}": count - before.get((agent, verb), 0)
        for (agent, verb), count in sim.request_counts().items()
        if verb not in reads
        and not agent.startswith("k8sdr-sim-")
        and count > before.get((agent, verb), 0)
    }


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    sim = SimCluster.start(tmp_path_factory.mktemp("staging"), workers=3, profile="fast")
    try:
        api = Cluster.from_kubeconfig(sim.kubeconfig_path)
        api.core.create_namespace({"metadata": {"name": "shop"}})
        api.apps.create_namespaced_deployment("shop", WEB)
        api.policy.create_namespaced_pod_disruption_budget(
            "shop",
            {
                "metadata": {"name": "web"},
                "spec": {"minAvailable": 3, "selector": WEB["spec"]["selector"]},
            },  # type: ignore[index]
        )
        api.core.patch_node(
            "k8sdr-worker2",
            {
                "metadata": {"labels": {"tier": "db"}},
                "spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]},
            },
        )
        api.close()
        yield sim
    finally:
        sim.stop()


def test_the_twin_has_the_targets_shape_and_objects_and_the_target_no_write(
    staging: SimCluster, tmp_path: Path
) -> None:
    before = staging.request_counts()
    target = Cluster.from_kubeconfig(staging.kubeconfig_path, read_only=True)
    journal = tmp_path / "journal.jsonl"
    undo = UndoStack(Journal(journal))
    launch = functools.partial(launch_sim, undo=undo, name="the twin")
    twin = Twin.start(target, tmp_path / "twin", launch=launch, profile="fast")
    try:
        # Journaled as the session's simulator is: `k8sdr recover` stops a twin left running.
        (launched,) = read_journal(journal)
        assert launched.record.kind == "sim-cluster"
        assert launched.record.data == {"state_dir": str(tmp_path / "twin")}
        nodes = {n.name: n for n in twin.cluster.nodes()}
        assert set(nodes) == {
            "k8sdr-control-plane",
            "k8sdr-worker",
            "k8sdr-worker2",
            "k8sdr-worker3",
        }
        assert nodes["k8sdr-worker2"].labels["tier"] == "db"
        assert [str(t) for t in nodes["k8sdr-worker2"].taints] == ["dedicated=db:NoSchedule"]
        assert nodes["k8sdr-control-plane"].has_taint("node-role.kubernetes.io/control-plane")
        assert twin.loaded.counts == {"namespaces": 1, "deployments": 1, "poddisruptionbudgets": 1}
        assert twin.not_ready == []
        budget = twin.cluster.read_path("/apis/policy/v1/namespaces/shop/poddisruptionbudgets/web")
        assert budget is not None
        assert budget["spec"]["minAvailable"] == 3
        assert twin.target.timings.lease_duration == 4.0
        assert twin.target.timings.unreachable_toleration == 10
        # The twin's nodes run on its own loopback slot, not the target's.
        assert twin.sim.slot != staging.slot
    finally:
        twin.stop()
        target.close()
    assert read_journal(journal) == []  # stopping the twin closed its entry
    assert outside_writes(staging, before) == {}
    assert staging.request_counts()[("pytest-k8sdr", "get")] > 0  # the count sees our reads


def test_the_counter_sees_a_write(staging: SimCluster) -> None:
    before = staging.request_counts()
    api = Cluster.from_kubeconfig(staging.kubeconfig_path)
    try:
        api.core.patch_namespace("shop", {"metadata": {"labels": {"seen": "yes"}}})
    finally:
        api.close()
    assert outside_writes(staging, before) == {"pytest-k8sdr patch": 1}


def test_a_read_only_facade_refuses_the_twins_writes_before_a_request(
    staging: SimCluster,
) -> None:
    target = Cluster.from_kubeconfig(staging.kubeconfig_path, read_only=True)
    try:
        with pytest.raises(Exception, match="create_object"):
            target.create_object("/api/v1/namespaces", {"metadata": {"name": "x"}})
        assert read_target(target).nodes
    finally:
        target.close()
