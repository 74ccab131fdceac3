"""Workload controllers, the scheduler's filters and the admission plugin."""

from __future__ import annotations

from ctrl_support import Cluster, condition, ready_pods, run, taints

from pytest_k8sdr.sim.apimachinery.types import JSON

UNREACHABLE_NE = ("node.kubernetes.io/unreachable", "NoExecute")


def test_rollout_restart_replaces_every_pod_and_records_scaling_events() -> None:
    async def scenario(c: Cluster) -> None:
        c.add_node("w1")
        c.add_node("w2")
        c.deployment(
            "web",
            4,
            strategy={
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
        )
        before = {
            p["metadata"]["name"]
            for p in await c.wait_for(lambda: ready_pods(c, "app=web", 4), 5, "ready")
        }
        seen_total: list[int] = []
        c.store.subscribe(
            "pods",
            lambda ev: seen_total.append(
                len(
                    [
                        p
                        for p in c.pods(selector="app=web")
                        if not p["metadata"].get("deletionTimestamp")
                    ]
                )
            ),
        )
        dep = c.store.get("deployments", "default", "web")
        dep["spec"]["template"]["metadata"]["annotations"] = {
            "kubectl.kubernetes.io/restartedAt": "t1"
        }
        c.store.update("deployments", "default", "web", dep)
        await c.wait_for(
            lambda: (
                (pods := ready_pods(c, "app=web", 4))
                and not before & {p["metadata"]["name"] for p in pods}
                and len(c.pods(selector="app=web")) == 4
            ),
            10,
            "rolled",
        )
        # maxSurge 1: never more than 5 live pods.
        assert max(seen_total) <= 5
        sets = c.store.list("replicasets", "default")["items"]
        assert sorted(s["spec"]["replicas"] for s in sets) == [0, 4]
        new = next(s for s in sets if s["spec"]["replicas"] == 4)
        assert new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
        messages = [e["message"] for e in c.events("ScalingReplicaSet", "web")]
        assert any(
            m.startswith("Scaled up replica set ") and m.endswith(" from 0 to 1") for m in messages
        )
        assert any(
            m.startswith("Scaled down replica set ") and m.endswith(" to 0") for m in messages
        )
        await c.wait_for(
            lambda: c.get_if(
                "deployments",
                "default",
                "web",
                lambda d: (
                    d["status"].get("updatedReplicas") == 4
                    and d["status"].get("availableReplicas") == 4
                ),
            ),
            3,
            "deployment status",
        )
        assert c.events("SuccessfulCreate")
        assert c.events("SuccessfulDelete")

    run(scenario)


def test_ordered_ready_statefulset_waits_for_each_pod() -> None:
    async def scenario(c: Cluster) -> None:
        kubelet = c.add_node("w1")
        kubelet.start_pods = False  # pods stay Pending
        order: list[str] = []
        c.store.subscribe(
            "pods",
            lambda ev: order.append(ev.object["metadata"]["name"]) if ev.type == "ADDED" else None,
        )
        c.statefulset("db", 3)
        await c.wait_for(lambda: c.pods(selector="app=db"), 3, "db-0 created")
        await c.hold(
            lambda: [p["metadata"]["name"] for p in c.pods(selector="app=db")] == ["db-0"],
            0.6,
            "only db-0 while it is not ready",
        )
        kubelet.start_pods = True
        pods = await c.wait_for(lambda: ready_pods(c, "app=db", 3), 5, "all ready")
        assert order == ["db-0", "db-1", "db-2"]
        assert (
            pods[0]["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"]
            == pods[0]["metadata"]["name"]
        )

    run(scenario)


def test_parallel_statefulset_creates_all_at_once() -> None:
    async def scenario(c: Cluster) -> None:
        kubelet = c.add_node("w1")
        kubelet.start_pods = False
        c.statefulset("db", 3, podManagementPolicy="Parallel")
        await c.wait_for(
            lambda: len(c.pods(selector="app=db")) == 3, 2, "three pods without waiting"
        )

    run(scenario)


def test_statefulset_pods_name_their_revision_and_old_revisions_are_pruned() -> None:
    """Upstream labels pods with the ControllerRevision's name and keeps revisionHistoryLimit."""

    async def scenario(c: Cluster) -> None:
        c.add_node("w1")
        c.statefulset("db", 2, revisionHistoryLimit=1)

        def rolled_out() -> str | None:
            sts = c.store.get("statefulsets", "default", "db")
            update = (sts.get("status") or {}).get("updateRevision")
            pods = ready_pods(c, "app=db", 2)
            labels = {p["metadata"]["labels"]["controller-revision-hash"] for p in pods}
            return update if pods and labels == {update} else None

        def revisions() -> list[str]:
            items = c.store.list("controllerrevisions", "default")["items"]
            return [r["metadata"]["name"] for r in sorted(items, key=lambda r: r["revision"])]

        seen = [await c.wait_for(rolled_out, 10, "db rolled out")]
        assert seen[0].startswith("db-")
        assert revisions() == seen
        for image in ("k8sdr/pod:2", "k8sdr/pod:3", "k8sdr/pod:4"):
            sts = c.store.get("statefulsets", "default", "db")
            sts["spec"]["template"]["spec"]["containers"][0]["image"] = image
            c.store.update("statefulsets", "default", "db", sts)
            seen.append(
                await c.wait_for(
                    lambda: (r := rolled_out()) not in (None, *seen) and r, 10, f"{image} out"
                )
            )
        # The live revision and one of history: the two oldest are gone.
        await c.wait_for(lambda: revisions() == seen[-2:], 5, "history pruned to 1")
        hashes = {
            r["metadata"]["name"]: r["metadata"]["labels"]["controller.kubernetes.io/hash"]
            for r in c.store.list("controllerrevisions", "default")["items"]
        }
        assert all(name == f"db-{h}" for name, h in hashes.items())

    run(scenario)


def test_daemonset_pods_tolerate_and_stay_on_a_dead_node() -> None:
    async def scenario(c: Cluster) -> None:
        c.add_node("w1")
        c.add_node("w2")
        c.add_node("w3")
        c.store.create(
            "daemonsets",
            "default",
            {
                "metadata": {"name": "agent"},
                "spec": {
                    "selector": {"matchLabels": {"app": "agent"}},
                    "template": {
                        "metadata": {"labels": {"app": "agent"}},
                        "spec": {"containers": [{"name": "c", "image": "x"}]},
                    },
                },
            },
        )
        pods = await c.wait_for(lambda: ready_pods(c, "app=agent", 3), 3, "agents")
        tolerations = pods[0]["spec"]["tolerations"]
        unreachable = [t for t in tolerations if t.get("key") == "node.kubernetes.io/unreachable"]
        assert unreachable == [
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}
        ]
        assert any(t.get("key") == "node.kubernetes.io/unschedulable" for t in tolerations)
        on_w1 = next(p for p in pods if p["spec"]["nodeName"] == "w1")["metadata"]["name"]
        c.kubelets["w1"].kill()
        await c.wait_for(lambda: UNREACHABLE_NE in taints(c.node("w1")), 4, "tainted")
        # Well past the default tolerations: still bound, not deleted, nothing created elsewhere.
        await c.hold(
            lambda: c.get_if(
                "pods", "default", on_w1, lambda p: not p["metadata"].get("deletionTimestamp")
            ),
            2.5,
            "kept",
        )
        assert len(c.pods(selector="app=agent")) == 3
        assert (condition(c.store.get("pods", "default", on_w1), "Ready") or {}).get(
            "status"
        ) == "False"

    run(scenario)


def test_scheduler_filters_selector_affinity_resources_and_reports_failures() -> None:
    async def scenario(c: Cluster) -> None:
        c.add_node("small", labels={"disk": "ssd"}, cpu="1")
        c.add_node("big", cpu="8")
        spec = {"nodeSelector": {"disk": "ssd"}, "containers": [{"name": "c", "image": "x"}]}
        c.store.create("pods", "default", {"metadata": {"name": "sel"}, "spec": spec})
        aff = {
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "disk", "operator": "DoesNotExist"}]}
                        ]
                    }
                }
            },
            "containers": [{"name": "c", "image": "x"}],
        }
        c.store.create("pods", "default", {"metadata": {"name": "aff"}, "spec": aff})
        heavy = {
            "containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "2"}}}]
        }
        c.store.create("pods", "default", {"metadata": {"name": "heavy"}, "spec": heavy})
        huge = {
            "containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "16"}}}]
        }
        c.store.create("pods", "default", {"metadata": {"name": "huge"}, "spec": huge})
        await c.wait_for(
            lambda: all(
                c.store.get("pods", "default", n)["spec"].get("nodeName")
                for n in ("sel", "aff", "heavy")
            ),
            2,
            "bound",
        )
        assert c.store.get("pods", "default", "sel")["spec"]["nodeName"] == "small"
        assert c.store.get("pods", "default", "aff")["spec"]["nodeName"] == "big"
        assert c.store.get("pods", "default", "heavy")["spec"]["nodeName"] == "big"
        assert (
            c.events("Scheduled", "sel")[0]["message"]
            == "Successfully assigned default/sel to small"
        )
        failed = await c.wait_for(
            lambda: c.events("FailedScheduling", "huge"), 2, "FailedScheduling"
        )
        assert failed[0]["message"].startswith("0/2 nodes are available: 2 Insufficient cpu.")
        cond = condition(c.store.get("pods", "default", "huge"), "PodScheduled")
        assert (cond["status"], cond["reason"]) == ("False", "Unschedulable")
        # A new node with room: the pending pod is retried and bound.
        c.add_node("bigger", cpu="32")
        await c.wait_for(
            lambda: c.store.get("pods", "default", "huge")["spec"].get("nodeName") == "bigger",
            3,
            "huge bound once room appears",
        )

    run(scenario)


def test_hostname_spread_keeps_replacement_pending_while_dead_node_exists() -> None:
    async def scenario(c: Cluster) -> None:
        for name in ("w1", "w2", "w3"):
            c.add_node(name)
        spread = [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": "web"}},
            }
        ]
        c.deployment("web", 3, pod_spec={"topologySpreadConstraints": spread})
        pods = await c.wait_for(lambda: ready_pods(c, "app=web", 3), 5, "ready")
        assert sorted(p["spec"]["nodeName"] for p in pods) == ["w1", "w2", "w3"]
        c.kubelets["w1"].kill()
        # The dead node is tainted but nodeTaintsPolicy defaults to Ignore: it is a domain with
        # 0 pods once its pod terminates, so the replacement cannot go to w2/w3 (skew 2).
        pending = await c.wait_for(
            lambda: [
                p
                for p in c.pods(selector="app=web")
                if not p["spec"].get("nodeName")
                and c.events("FailedScheduling", p["metadata"]["name"])
            ],
            6,
            "replacement pending",
        )
        assert (
            "didn't match pod topology spread constraints"
            in c.events("FailedScheduling", pending[0]["metadata"]["name"])[0]["message"]
        )
        c.store.delete("nodes", None, "w1")
        await c.wait_for(
            lambda: ready_pods(c, "app=web", 3, avoid="w1"), 5, "scheduled once w1 is gone"
        )

    run(scenario)


def test_default_toleration_seconds_keeps_existing_tolerations() -> None:
    async def scenario(c: Cluster) -> None:
        own = {
            "key": "node.kubernetes.io/unreachable",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 7,
        }
        pod = c.store.create(
            "pods",
            "default",
            {
                "metadata": {"name": "p"},
                "spec": {"tolerations": [own], "containers": [{"name": "c", "image": "x"}]},
            },
        )
        tols = pod["spec"]["tolerations"]
        assert own in tols
        assert {
            "key": "node.kubernetes.io/not-ready",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": c.profile.default_not_ready_toleration_seconds,
        } in tols
        assert len(tols) == 2

    run(scenario)


def test_pod_without_toleration_is_evicted_at_once() -> None:
    async def scenario(c: Cluster) -> None:
        c.add_node("w1")
        c.add_node("w2")
        c.deployment("web", 2)
        pods = await c.wait_for(lambda: ready_pods(c, "app=web", 2), 5, "ready")
        victim = pods[0]["spec"]["nodeName"]
        name = pods[0]["metadata"]["name"]
        c.kubelets[victim].kill()
        node = await c.wait_for(
            lambda: c.get_if("nodes", None, victim, lambda n: UNREACHABLE_NE in taints(n)),
            4,
            "tainted",
        )
        del node
        await c.wait_for(
            lambda: c.get_if(
                "pods", "default", name, lambda p: p["metadata"].get("deletionTimestamp")
            ),
            0.5,
            "deleted right after the taint",
        )

    run(scenario, disabled={"DefaultTolerationSeconds"})


def test_namespace_with_pods_on_a_dead_node_stays_terminating() -> None:
    async def scenario(c: Cluster) -> None:
        c.add_node("w1")
        c.store.create("namespaces", None, {"metadata": {"name": "app"}})
        c.deployment("web", 1, namespace="app")
        await c.wait_for(lambda: ready_pods(c, "app=web", 0) == [] and c.pods("app"), 3, "pod")
        await c.wait_for(
            lambda: [
                p for p in c.pods("app") if (condition(p, "Ready") or {}).get("status") == "True"
            ],
            3,
            "ready",
        )
        c.kubelets["w1"].kill()
        c.store.delete("namespaces", None, "app")
        await c.hold(
            lambda: c.get_if(
                "namespaces", None, "app", lambda n: n["status"]["phase"] == "Terminating"
            ),
            0.8,
            "namespace Terminating while its pod cannot finish",
        )
        assert not c.store.list("deployments", "app")["items"]
        c.kubelets["w1"].start()
        await c.wait_for(
            lambda: c.get_if("namespaces", None, "app", lambda n: True) is None, 3, "gone"
        )

    run(scenario)


def test_a_rollout_without_progress_exceeds_its_deadline_then_completes() -> None:
    # progress.go: no new updated, ready or available replica for progressDeadlineSeconds
    # turns Progressing False (ProgressDeadlineExceeded); progress turns it True again.
    async def scenario(c: Cluster) -> None:
        c.add_node("w1")
        c.deployment(
            "web",
            2,
            progressDeadlineSeconds=1,
            strategy={"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        )
        await c.wait_for(lambda: ready_pods(c, "app=web", 2), 5, "ready")

        def progressing() -> JSON | None:
            return condition(c.store.get("deployments", "default", "web"), "Progressing")

        await c.wait_for(
            lambda: (progressing() or {}).get("reason") == "NewReplicaSetAvailable", 3, "done"
        )
        dep = c.store.get("deployments", "default", "web")
        dep["spec"]["template"]["spec"]["nodeSelector"] = {"disk": "ssd"}  # no such node yet
        c.store.update("deployments", "default", "web", dep)
        stalled = await c.wait_for(
            lambda: (p := progressing()) and p.get("status") == "False" and p, 5, "deadline"
        )
        assert stalled["reason"] == "ProgressDeadlineExceeded"
        assert stalled["message"].endswith("has timed out progressing.")
        c.add_node("w2", labels={"disk": "ssd"})
        await c.wait_for(
            lambda: (progressing() or {}).get("reason") == "NewReplicaSetAvailable", 10, "rolled"
        )

    run(scenario)
