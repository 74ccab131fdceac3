"""The node-death timeline of the reference, replayed on a shortened fast profile."""

from __future__ import annotations

import time

import pytest
from ctrl_support import TEST_PROFILE, Cluster, condition, ready_pods, run, taints

from pytest_k8sdr.sim.profiles import PROFILES, Profile

UNREACHABLE_NS = ("node.kubernetes.io/unreachable", "NoSchedule")
UNREACHABLE_NE = ("node.kubernetes.io/unreachable", "NoExecute")


def _slice_endpoint(cluster: Cluster, service: str, pod_name: str) -> dict | None:
    for s in cluster.slices(service):
        for ep in s.get("endpoints") or []:
            if ep["targetRef"]["name"] == pod_name:
                return ep
    return None


def test_node_death_heals_deployment_and_holds_statefulset_identity() -> None:
    async def scenario(c: Cluster) -> None:
        for name in ("w1", "w2", "w3"):
            c.add_node(name)
        c.deployment("web", 3, strategy={"type": "RollingUpdate"})
        c.statefulset("db", 3, podManagementPolicy="Parallel")
        await c.wait_for(lambda: ready_pods(c, "app=web", 3), 10, "web ready")
        await c.wait_for(lambda: ready_pods(c, "app=db", 3), 10, "db ready")
        # Pick a victim hosting both a web pod and a db pod (spreading puts one of each on each).
        db_pods = {p["spec"]["nodeName"]: p for p in c.pods(selector="app=db")}
        web_pods = {p["spec"]["nodeName"]: p for p in c.pods(selector="app=web")}
        victim = next(n for n in db_pods if n in web_pods)
        web_victim = web_pods[victim]["metadata"]["name"]
        db_victim = db_pods[victim]["metadata"]["name"]
        # The EndpointSlice controller follows the pods' readiness from its own queue: wait.
        await c.wait_for(
            lambda: (
                (_slice_endpoint(c, "web", web_victim) or {}).get("conditions")
                == {"ready": True, "serving": True, "terminating": False}
            ),
            2,
            "endpoint ready",
        )

        t0 = time.monotonic()
        c.kubelets[victim].kill()

        node = await c.wait_for(
            lambda: c.get_if(
                "nodes",
                None,
                victim,
                lambda n: (condition(n, "Ready") or {}).get("status") == "Unknown",
            ),
            5,
            "Ready=Unknown",
        )
        t_unknown_at = time.monotonic()
        t_unknown = t_unknown_at - t0
        # grace period 1s, monitor period 0.2s
        assert t_unknown >= TEST_PROFILE.node_monitor_grace_period - 0.15
        for ctype in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure"):
            cond = condition(node, ctype)
            assert cond["status"] == "Unknown"
            assert cond["reason"] == "NodeStatusUnknown"
            assert cond["message"] == "Kubelet stopped posting node status."
        assert c.events("NodeNotReady", victim)[0]["source"]["component"] == "node-controller"
        await c.wait_for(lambda: UNREACHABLE_NS in taints(c.node(victim)), 2, "NoSchedule taint")

        # MarkPodsNotReady: Ready=False, phase still Running, Warning event on the pod.
        def web_not_ready() -> dict | None:
            pod = c.store.get("pods", "default", web_victim)
            return pod if (condition(pod, "Ready") or {}).get("status") == "False" else None

        pod = await c.wait_for(web_not_ready, 2, "pod Ready=False")
        assert pod["status"]["phase"] == "Running"
        assert (condition(pod, "ContainersReady") or {}).get("status") == "True"
        assert c.events("NodeNotReady", web_victim)[0]["type"] == "Warning"
        await c.wait_for(
            lambda: (
                (_slice_endpoint(c, "web", web_victim) or {}).get("conditions")
                == {"ready": False, "serving": False, "terminating": False}
            ),
            2,
            "endpoint not ready",
        )
        await c.wait_for(
            lambda: any(
                a["targetRef"]["name"] == web_victim
                for s in c.store.get("endpoints", "default", "web").get("subsets") or []
                for a in s.get("notReadyAddresses") or []
            ),
            2,
            "legacy endpoints notReadyAddresses",
        )

        node = await c.wait_for(
            lambda: c.get_if("nodes", None, victim, lambda n: UNREACHABLE_NE in taints(n)),
            2,
            "NoExecute taint",
        )
        t_taint = time.monotonic()
        # The NoExecute taint follows one monitor pass after Unknown (upstream-observed.md).
        assert t_taint - t_unknown_at >= TEST_PROFILE.node_monitor_period / 2
        ne = next(t for t in node["spec"]["taints"] if t["effect"] == "NoExecute")
        assert ne["timeAdded"]

        # After the default tolerationSeconds: DisruptionTarget + DELETE, pods stay Terminating.
        def evicted() -> dict | None:
            pod = c.store.get("pods", "default", web_victim)
            return pod if pod["metadata"].get("deletionTimestamp") else None

        pod = await c.wait_for(evicted, 5, "taint-based eviction")
        waited = time.monotonic() - t_taint
        assert waited >= TEST_PROFILE.default_unreachable_toleration_seconds - 0.3
        dt = condition(pod, "DisruptionTarget")
        assert dt["status"] == "True"
        assert dt["reason"] == "DeletionByTaintManager"
        assert dt["message"] == "Taint manager: deleting due to NoExecute taint"
        assert pod["metadata"]["deletionGracePeriodSeconds"] == 1
        assert any(
            "Marking for deletion Pod default/" + web_victim == e["message"]
            for e in c.events("TaintManagerEviction", web_victim)
        )
        await c.wait_for(
            lambda: (
                (_slice_endpoint(c, "web", web_victim) or {}).get("conditions")
                == {"ready": False, "serving": False, "terminating": True}
            ),
            2,
            "endpoint terminating",
        )

        # Replacements: created at once, scheduled elsewhere, ready.
        await c.wait_for(
            lambda: ready_pods(c, "app=web", 3, avoid=victim), 5, "web healed elsewhere"
        )
        dep = await c.wait_for(
            lambda: c.get_if(
                "deployments", "default", "web", lambda d: d["status"].get("availableReplicas") == 3
            ),
            3,
            "deployment available",
        )
        assert dep["status"]["replicas"] == 3  # Terminating pods are not active

        # The StatefulSet pod holds its identity: Terminating on the dead node, no twin.
        await c.hold(
            lambda: c.get_if(
                "pods",
                "default",
                db_victim,
                lambda p: (
                    p["metadata"].get("deletionTimestamp") and p["spec"]["nodeName"] == victim
                ),
            ),
            1.0,
            "db pod Terminating on the dead node",
        )
        assert len(c.pods(selector="app=db")) == 3

        # kubectl delete node: RemovingNode, Lease collected, pod GC after the quarantine.
        c.store.delete("nodes", None, victim)
        t_delete = time.monotonic()
        await c.wait_for(lambda: c.events("RemovingNode", victim), 2, "RemovingNode event")
        await c.wait_for(
            lambda: c.get_if(
                "pods", "default", db_victim, lambda p: p["spec"]["nodeName"] != victim
            ),
            5,
            "db pod recreated elsewhere",
        )
        assert time.monotonic() - t_delete >= TEST_PROFILE.podgc_quarantine - 0.05
        await c.wait_for(lambda: ready_pods(c, "app=db", 3, avoid=victim), 5, "db whole again")
        assert not c.store.list("pods", field_selector=f"spec.nodeName={victim}")["items"]

    run(scenario)


def test_pod_gc_marks_orphans_failed_with_disruption_target() -> None:
    async def scenario(c: Cluster) -> None:
        c.add_node("w1")
        c.add_node("w2")
        c.statefulset("db", 2, podManagementPolicy="Parallel")
        await c.wait_for(lambda: ready_pods(c, "app=db", 2), 10, "db ready")
        victim = c.store.get("pods", "default", "db-0")["spec"]["nodeName"]
        c.kubelets[victim].kill()
        seen: list[dict] = []
        c.store.subscribe(
            "pods",
            lambda ev: seen.append(ev.object) if ev.object["metadata"]["name"] == "db-0" else None,
        )
        c.store.delete("nodes", None, victim)
        await c.wait_for(
            lambda: any(p["status"].get("phase") == "Failed" for p in seen), 5, "Failed"
        )
        failed = next(p for p in seen if p["status"].get("phase") == "Failed")
        dt = condition(failed, "DisruptionTarget")
        assert dt["reason"] == "DeletionByPodGC"
        assert dt["message"] == "PodGC: node no longer exists"

    run(scenario)


def test_out_of_service_taint_releases_statefulset_pod() -> None:
    async def scenario(c: Cluster) -> None:
        for name in ("w1", "w2", "w3"):
            c.add_node(name)
        c.statefulset("db", 1)
        await c.wait_for(lambda: ready_pods(c, "app=db", 1), 10, "db ready")
        victim = c.store.get("pods", "default", "db-0")["spec"]["nodeName"]
        c.kubelets[victim].kill()
        await c.wait_for(
            lambda: c.get_if(
                "pods", "default", "db-0", lambda p: p["metadata"].get("deletionTimestamp")
            ),
            6,
            "db-0 Terminating",
        )
        await c.hold(
            lambda: c.get_if("pods", "default", "db-0", lambda p: p["spec"]["nodeName"] == victim),
            0.8,
            "stuck",
        )
        node = c.node(victim)
        node["spec"]["taints"].append(
            {
                "key": "node.kubernetes.io/out-of-service",
                "value": "nodeshutdown",
                "effect": "NoExecute",
            }
        )
        c.store.update("nodes", None, victim, node)
        await c.wait_for(
            lambda: c.get_if(
                "pods", "default", "db-0", lambda p: p["spec"].get("nodeName") not in (None, victim)
            ),
            3,
            "db-0 recreated elsewhere",
        )

    run(scenario)


def test_recovery_before_toleration_cancels_eviction() -> None:
    profile = TEST_PROFILE.replace(default_unreachable_toleration_seconds=3)

    async def scenario(c: Cluster) -> None:
        for name in ("w1", "w2", "w3"):
            c.add_node(name)
        c.deployment("web", 3)
        await c.wait_for(lambda: ready_pods(c, "app=web", 3), 10, "web ready")
        victim = "w1"
        names = {p["metadata"]["name"] for p in c.pods(selector="app=web")}
        c.kubelets[victim].kill()
        await c.wait_for(lambda: UNREACHABLE_NE in taints(c.node(victim)), 5, "NoExecute taint")
        c.kubelets[victim].start()
        await c.wait_for(lambda: not taints(c.node(victim)), 3, "taints removed")
        assert (condition(c.node(victim), "Ready") or {}).get("status") == "True"
        await c.wait_for(
            lambda: any(
                "Cancelling deletion" in e["message"] for e in c.events("TaintManagerEviction")
            ),
            2,
            "cancel event",
        )
        # Well past the toleration: nobody was deleted, nothing moved.
        await c.hold(
            lambda: (
                {
                    p["metadata"]["name"]
                    for p in c.pods(selector="app=web")
                    if not p["metadata"].get("deletionTimestamp")
                }
                == names
            ),
            3.5,
            "pods kept",
        )

    run(scenario, profile=profile)


def test_three_of_five_down_in_a_zone_stops_tainting() -> None:
    async def scenario(c: Cluster) -> None:
        for i in range(5):
            c.add_node(f"a{i}", zone="za")
        c.add_node("b0", zone="zb")
        await c.wait_for(
            lambda: all(
                (condition(c.node(f"a{i}"), "Ready") or {}).get("status") == "True"
                for i in range(5)
            ),
            2,
            "nodes ready",
        )
        await c.hold(lambda: True, 0.5, "settle")
        down = ["a0", "a1", "a2"]
        c.kill_together(down)
        await c.wait_for(
            lambda: all(UNREACHABLE_NS in taints(c.node(n)) for n in down), 5, "Unknown"
        )
        # Partial disruption in a small zone: the NoExecute rate drops to 0.
        await c.hold(
            lambda: not any(UNREACHABLE_NE in taints(c.node(n)) for n in down),
            1.5,
            "no NoExecute taint in a partially disrupted zone",
        )
        # A zone that is entirely down is tainted at the normal rate.
        c.kubelets["b0"].kill()
        await c.wait_for(lambda: UNREACHABLE_NE in taints(c.node("b0")), 5, "zone b tainted")
        assert not any(UNREACHABLE_NE in taints(c.node(n)) for n in down)

    run(scenario)


def test_all_zones_down_removes_no_execute_taints() -> None:
    async def scenario(c: Cluster) -> None:
        for name in ("w1", "w2", "w3"):
            c.add_node(name)
        c.kubelets["w1"].kill()
        await c.wait_for(lambda: UNREACHABLE_NE in taints(c.node("w1")), 5, "w1 tainted")
        c.kill_together(["w2", "w3"])
        # Every node not ready: the controller blames its own connectivity and untaints.
        await c.wait_for(
            lambda: (
                all(UNREACHABLE_NS in taints(c.node(n)) for n in ("w2", "w3"))
                and not any(UNREACHABLE_NE in taints(c.node(n)) for n in ("w1", "w2", "w3"))
            ),
            5,
            "NoExecute taints removed",
        )
        await c.hold(
            lambda: not any(UNREACHABLE_NE in taints(c.node(n)) for n in ("w1", "w2", "w3")),
            1.0,
            "no tainting while everything is down",
        )
        # One node back: normal mode, the others are tainted again.
        c.kubelets["w3"].start()
        await c.wait_for(
            lambda: all(UNREACHABLE_NE in taints(c.node(n)) for n in ("w1", "w2")),
            5,
            "tainting resumes",
        )

    run(scenario)


def test_cordon_adds_unschedulable_taint_and_blocks_scheduling() -> None:
    async def scenario(c: Cluster) -> None:
        c.add_node("w1")
        c.add_node("w2")
        node = c.node("w1")
        node["spec"]["unschedulable"] = True
        c.store.update("nodes", None, "w1", node)
        await c.wait_for(
            lambda: ("node.kubernetes.io/unschedulable", "NoSchedule") in taints(c.node("w1")),
            1,
            "unschedulable taint",
        )
        c.deployment("web", 4)
        await c.wait_for(lambda: ready_pods(c, "app=web", 4), 10, "web ready")
        assert {p["spec"]["nodeName"] for p in c.pods(selector="app=web")} == {"w2"}
        node = c.node("w1")
        node["spec"]["unschedulable"] = False
        c.store.update("nodes", None, "w1", node)
        await c.wait_for(lambda: not taints(c.node("w1")), 1, "taint removed on uncordon")

    run(scenario)


def test_node_that_never_posts_status_gets_startup_grace() -> None:
    async def scenario(c: Cluster) -> None:
        c.add_node("w1")
        c.store.create("nodes", None, {"metadata": {"name": "silent"}})
        start = time.monotonic()
        node = await c.wait_for(
            lambda: c.get_if("nodes", None, "silent", lambda n: condition(n, "Ready")),
            5,
            "Ready added",
        )
        # The startup grace (2s), not the grace period (1s), applies; creationTimestamp has
        # second resolution, so allow up to one second early.
        assert time.monotonic() - start >= TEST_PROFILE.node_startup_grace_period - 1.05
        ready = condition(node, "Ready")
        assert (ready["status"], ready["reason"]) == ("Unknown", "NodeStatusNeverUpdated")
        assert ready["message"] == "Kubelet never posted node status."
        assert {c["type"] for c in node["status"]["conditions"]} == {
            "Ready",
            "MemoryPressure",
            "DiskPressure",
            "PIDPressure",
        }
        await c.wait_for(lambda: UNREACHABLE_NE in taints(c.node("silent")), 2, "NoExecute taint")
        assert not c.events("NodeNotReady", "silent")  # it was never Ready

    run(scenario)


def test_healthy_nodes_do_not_flap() -> None:
    async def scenario(c: Cluster) -> None:
        for name in ("w1", "w2", "w3"):
            c.add_node(name)
        await c.hold(
            lambda: all(
                (condition(c.node(n), "Ready") or {}).get("status") == "True"
                and not taints(c.node(n))
                for n in ("w1", "w2", "w3")
            ),
            3.0,
            "all nodes Ready and untainted",
        )
        assert not c.events("NodeNotReady")

    run(scenario)


@pytest.mark.parametrize("profile", [*PROFILES.values(), TEST_PROFILE], ids=lambda p: p.name)
def test_profiles_leave_room_for_two_missed_renewals(profile: Profile) -> None:
    # upstream-observed.md: a grace period of one renewal interval flapped; two did not.
    assert profile.node_monitor_grace_period >= 2 * profile.lease_renew_interval
    assert profile.node_monitor_grace_period >= 2 * profile.node_monitor_period
