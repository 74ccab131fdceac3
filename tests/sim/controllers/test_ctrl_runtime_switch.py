"""Controllers switched off and on while the cluster runs (ControllerManager.set).

What a restart of kube-controller-manager or kube-scheduler with another `--controllers` list
does: switched off, a controller writes nothing more; switched on, it lists its world afresh
and catches up.
"""

from __future__ import annotations

import pytest
from ctrl_support import Cluster, ready_pods, run

from pytest_k8sdr.sim.controllers import CONTROLLERS


def _unbound(c: Cluster, selector: str) -> list[str]:
    return [
        p["metadata"]["name"]
        for p in c.pods(selector=selector)
        if not p["spec"].get("nodeName") and not p["metadata"].get("deletionTimestamp")
    ]


def test_scheduler_switched_off_leaves_new_pods_pending_until_switched_on() -> None:
    async def scenario(c: Cluster) -> None:
        c.add_node("w1")
        c.add_node("w2")
        c.deployment("web", 2)
        await c.wait_for(lambda: ready_pods(c, "app=web", 2), 5, "web placed")
        assert c.controllers.set("scheduler", enabled=False) is True
        assert c.controllers.states()["scheduler"] is False
        c.store.patch(
            "deployments",
            "default",
            "web",
            {"spec": {"replicas": 4}},
            "application/merge-patch+json",
        )
        await c.wait_for(lambda: len(_unbound(c, "app=web")) == 2, 5, "two new pods created")
        await c.hold(lambda: len(_unbound(c, "app=web")) == 2, 1.0, "new pods stay unbound")
        assert c.controllers.set("scheduler", enabled=True) is True
        await c.wait_for(lambda: ready_pods(c, "app=web", 4), 5, "all four placed and Ready")

    run(scenario)


def test_replicaset_switched_off_does_not_replace_a_deleted_pod() -> None:
    async def scenario(c: Cluster) -> None:
        c.add_node("w1")
        c.deployment("web", 2)
        pods = await c.wait_for(lambda: ready_pods(c, "app=web", 2), 5, "web ready")
        c.controllers.set("replicaset", enabled=False)
        c.store.delete("pods", "default", pods[0]["metadata"]["name"], grace_period_seconds=0)
        await c.hold(lambda: len(c.pods(selector="app=web")) == 1, 1.0, "one pod left")
        c.controllers.set("replicaset", enabled=True)
        await c.wait_for(lambda: ready_pods(c, "app=web", 2), 5, "replaced after switch-on")

    run(scenario)


def test_garbage_collector_switched_off_keeps_dependents_and_catches_up() -> None:
    async def scenario(c: Cluster) -> None:
        c.add_node("w1")
        c.deployment("web", 2)
        await c.wait_for(lambda: ready_pods(c, "app=web", 2), 5, "web ready")
        c.controllers.set("garbagecollector", enabled=False)
        c.store.delete("deployments", "default", "web")
        await c.hold(
            lambda: len(c.store.list("replicasets", "default")["items"]) == 1,
            0.5,
            "ReplicaSet kept without its Deployment",
        )
        c.controllers.set("garbagecollector", enabled=True)
        await c.wait_for(
            lambda: not c.store.list("replicasets", "default")["items"], 5, "ReplicaSet collected"
        )
        await c.wait_for(
            lambda: (
                not [
                    p
                    for p in c.pods(selector="app=web")
                    if not p["metadata"].get("deletionTimestamp")
                ]
            ),
            5,
            "pods collected",
        )

    run(scenario)


def test_every_controller_can_be_switched_off_and_on_again() -> None:
    async def scenario(c: Cluster) -> None:
        c.add_node("w1")
        for name in CONTROLLERS:
            assert c.controllers.set(name, enabled=False) is True
            assert c.controllers.set(name, enabled=False) is False
        assert not c.controllers.tasks()
        assert not any(v for k, v in c.controllers.states().items() if k in CONTROLLERS)
        for name in CONTROLLERS:
            assert c.controllers.set(name, enabled=True) is True
        # Everything runs again: a Deployment is placed and Ready.
        c.deployment("web", 2)
        await c.wait_for(lambda: ready_pods(c, "app=web", 2), 5, "web ready after restart")

    run(scenario)


def test_unknown_controller_name_is_refused() -> None:
    async def scenario(c: Cluster) -> None:
        with pytest.raises(ValueError, match=r"unknown controller.*schedular.*accepted"):
            c.controllers.set("schedular", enabled=False)

    run(scenario)
