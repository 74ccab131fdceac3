"""Storage as on kind, in process: classes, provisioner, PV binder, claims, VolumeBinding."""

from __future__ import annotations

from typing import Any

from ctrl_support import Cluster, condition, ready_pods, run

JSON = dict[str, Any]

TEMPLATE = {
    "metadata": {"name": "data"},
    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
}


def _claims(c: Cluster, namespace: str = "default") -> dict[str, JSON]:
    return {
        p["metadata"]["name"]: p for p in c.store.list("persistentvolumeclaims", namespace)["items"]
    }


def _volume(c: Cluster, claim: JSON) -> JSON:
    return c.store.get("persistentvolumes", None, claim["spec"]["volumeName"])


def _pinned_to(volume: JSON) -> list[str]:
    terms = volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    return [v for t in terms for e in t["matchExpressions"] for v in e["values"]]


def _with_class(class_name: str | None) -> dict[str, Any]:
    template = {"metadata": dict(TEMPLATE["metadata"]), "spec": dict(TEMPLATE["spec"])}
    if class_name is not None:
        template["spec"]["storageClassName"] = class_name
    return {"volumeClaimTemplates": [template]}


def _unscheduled_message(c: Cluster, name: str) -> str | None:
    pod = c.get_if("pods", "default", name, lambda p: not p["spec"].get("nodeName"))
    cond = condition(pod, "PodScheduled") if pod else None
    if cond and cond.get("status") == "False" and cond.get("reason") == "Unschedulable":
        return str(cond["message"])
    return None


def test_kind_storage_classes_exist_and_claims_get_the_default() -> None:
    async def scenario(c: Cluster) -> None:
        classes = {s["metadata"]["name"]: s for s in c.store.list("storageclasses")["items"]}
        standard = classes["standard"]
        assert standard["metadata"]["annotations"] == {
            "storageclass.kubernetes.io/is-default-class": "true"
        }
        assert (standard["provisioner"], standard["volumeBindingMode"]) == (
            "rancher.io/local-path",
            "WaitForFirstConsumer",
        )
        assert standard["reclaimPolicy"] == "Delete"
        assert (classes["network"]["volumeBindingMode"], classes["network"]["reclaimPolicy"]) == (
            "Immediate",
            "Delete",
        )
        claim = c.store.create("persistentvolumeclaims", "default", dict(TEMPLATE))
        assert claim["spec"]["storageClassName"] == "standard"
        await c.wait_for(
            lambda: c.events("WaitForFirstConsumer", "data"), 2, "WaitForFirstConsumer event"
        )
        claim = c.store.get("persistentvolumeclaims", "default", "data")
        assert claim["status"]["phase"] == "Pending"
        assert "spec" in claim
        assert not claim["spec"].get("volumeName")
        explicit = {**TEMPLATE, "metadata": {"name": "none"}, "spec": {**TEMPLATE["spec"]}}
        explicit["spec"]["storageClassName"] = ""
        assert (
            c.store.create("persistentvolumeclaims", "default", explicit)["spec"][
                "storageClassName"
            ]
            == ""
        )

    run(scenario)


def test_statefulset_claims_are_bound_to_local_volumes_before_its_pods_are_placed() -> None:
    async def scenario(c: Cluster) -> None:
        for name in ("w1", "w2"):
            c.add_node(name)
        bound_when_placed: dict[str, str] = {}

        def on_pod(event: Any) -> None:
            pod = event.object
            name, node = pod["metadata"]["name"], pod["spec"].get("nodeName")
            if node and name not in bound_when_placed:
                claim = c.store.get("persistentvolumeclaims", "default", f"data-{name}")
                bound_when_placed[name] = (claim.get("status") or {}).get("phase", "")

        c.store.subscribe("pods", on_pod)
        c.statefulset("db", 2, **_with_class(None))
        pods = await c.wait_for(lambda: ready_pods(c, "app=db", 2), 10, "db ready")
        assert bound_when_placed == {"db-0": "Bound", "db-1": "Bound"}
        claims = _claims(c)
        assert sorted(claims) == ["data-db-0", "data-db-1"]
        for pod in pods:
            name = pod["metadata"]["name"]
            claim = claims[f"data-{name}"]
            assert claim["metadata"]["labels"] == {"app": "db"}
            annotations = claim["metadata"]["annotations"]
            assert annotations["pv.kubernetes.io/bind-completed"] == "yes"
            assert annotations["volume.kubernetes.io/selected-node"] == pod["spec"]["nodeName"]
            assert (
                annotations["volume.kubernetes.io/storage-provisioner"] == "rancher.io/local-path"
            )
            volume = _volume(c, claim)
            assert volume["metadata"]["name"] == f"pvc-{claim['metadata']['uid']}"
            assert _pinned_to(volume) == [pod["spec"]["nodeName"]]
            assert volume["spec"]["claimRef"]["uid"] == claim["metadata"]["uid"]
            assert volume["status"]["phase"] == "Bound"
            assert claim["status"]["capacity"] == {"storage": "1Gi"}
            assert {"name": "data", "persistentVolumeClaim": {"claimName": f"data-{name}"}} in (
                pod["spec"]["volumes"]
            )
        messages = [e["message"] for e in c.events("SuccessfulCreate", "db")]
        assert "create Claim data-db-0 Pod db-0 in StatefulSet db success" in messages

        # A deleted pod comes back to the same claim, and so to the same node.
        before = claims["data-db-0"]["metadata"]["uid"]
        node = next(p["spec"]["nodeName"] for p in pods if p["metadata"]["name"] == "db-0")
        old_uid = next(p["metadata"]["uid"] for p in pods if p["metadata"]["name"] == "db-0")
        c.store.delete("pods", "default", "db-0")
        back = await c.wait_for(
            lambda: [
                p
                for p in ready_pods(c, "app=db", 2)
                if p["metadata"]["name"] == "db-0" and p["metadata"]["uid"] != old_uid
            ],
            10,
            "db-0 back",
        )
        assert back[0]["spec"]["nodeName"] == node
        assert _claims(c)["data-db-0"]["metadata"]["uid"] == before

    run(scenario)


def test_a_local_volume_keeps_its_pod_pending_once_its_node_is_deleted() -> None:
    async def scenario(c: Cluster) -> None:
        for name in ("w1", "w2"):
            c.add_node(name)
        c.statefulset("local", 1, **_with_class("standard"))
        (pod,) = await c.wait_for(lambda: ready_pods(c, "app=local", 1), 10, "local-0 ready")
        victim = pod["spec"]["nodeName"]
        c.kubelets[victim].kill()
        c.store.delete("nodes", None, victim)
        message = await c.wait_for(
            lambda: _unscheduled_message(c, "local-0"), 10, "local-0 pending"
        )
        assert message == (
            "0/1 nodes are available: 1 node(s) had volume node affinity conflict. "
            "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
        )
        assert c.events("FailedScheduling", "local-0")[-1]["message"] == message
        # The claim and its volume are still there, still pinned to the deleted node.
        claim = _claims(c)["data-local-0"]
        assert claim["status"]["phase"] == "Bound"
        assert _pinned_to(_volume(c, claim)) == [victim]
        await c.hold(
            lambda: not c.store.get("pods", "default", "local-0")["spec"].get("nodeName"),
            0.5,
            "local-0 stays pending",
        )

    run(scenario)


def test_a_network_volume_lets_its_pod_move_when_its_node_is_deleted() -> None:
    async def scenario(c: Cluster) -> None:
        for name in ("w1", "w2"):
            c.add_node(name)
        c.statefulset("net", 1, **_with_class("network"))
        (pod,) = await c.wait_for(lambda: ready_pods(c, "app=net", 1), 10, "net-0 ready")
        claim = _claims(c)["data-net-0"]
        volume = _volume(c, claim)
        assert "nodeAffinity" not in volume["spec"]
        assert "volume.kubernetes.io/selected-node" not in claim["metadata"]["annotations"]
        victim = pod["spec"]["nodeName"]
        c.kubelets[victim].kill()
        c.store.delete("nodes", None, victim)
        (moved,) = await c.wait_for(
            lambda: ready_pods(c, "app=net", 1, avoid=victim), 10, "net-0 moved"
        )
        assert moved["metadata"]["uid"] != pod["metadata"]["uid"]
        assert _claims(c)["data-net-0"]["spec"]["volumeName"] == volume["metadata"]["name"]

    run(scenario)


def test_unbound_immediate_claim_and_missing_claim_keep_pods_pending() -> None:
    async def scenario(c: Cluster) -> None:
        c.add_node("w1")
        c.store.create(
            "storageclasses",
            None,
            {
                "metadata": {"name": "manual"},
                "provisioner": "kubernetes.io/no-provisioner",
                "volumeBindingMode": "Immediate",
            },
        )
        claim = {"metadata": {"name": "static"}, "spec": {**TEMPLATE["spec"]}}
        claim["spec"]["storageClassName"] = "manual"
        c.store.create("persistentvolumeclaims", "default", claim)
        for name, claim_name in (("unbound", "static"), ("missing", "nope")):
            c.store.create(
                "pods",
                "default",
                {
                    "metadata": {"name": name},
                    "spec": {
                        "containers": [{"name": "c", "image": "i"}],
                        "volumes": [
                            {"name": "v", "persistentVolumeClaim": {"claimName": claim_name}}
                        ],
                    },
                },
            )
        unbound = await c.wait_for(lambda: _unscheduled_message(c, "unbound"), 5, "unbound")
        assert unbound.startswith(
            "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims."
        )
        missing = await c.wait_for(lambda: _unscheduled_message(c, "missing"), 5, "missing")
        assert missing.startswith(
            '0/1 nodes are available: persistentvolumeclaim "nope" not found.'
        )

        # A matching volume made by hand binds the claim; the pod is then placed.
        c.store.create(
            "persistentvolumes",
            None,
            {
                "metadata": {"name": "disk"},
                "spec": {
                    "capacity": {"storage": "5Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "manual",
                    "hostPath": {"path": "/srv/disk"},
                },
            },
        )
        await c.wait_for(
            lambda: c.get_if("pods", "default", "unbound", lambda p: p["spec"].get("nodeName")),
            5,
            "placed once bound",
        )
        claim = _claims(c)["static"]
        assert claim["spec"]["volumeName"] == "disk"
        assert claim["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] == "yes"

        # Retain: a volume whose claim is deleted stays, Released.
        c.store.delete("pods", "default", "unbound", grace_period_seconds=0)
        c.store.delete("persistentvolumeclaims", "default", "static")
        await c.wait_for(
            lambda: c.get_if(
                "persistentvolumes",
                None,
                "disk",
                lambda v: (v.get("status") or {}).get("phase") == "Released",
            ),
            5,
            "disk released",
        )

    run(scenario)


def test_deleting_a_provisioned_claim_deletes_its_volume() -> None:
    async def scenario(c: Cluster) -> None:
        claim = {"metadata": {"name": "scratch"}, "spec": {**TEMPLATE["spec"]}}
        claim["spec"]["storageClassName"] = "network"
        c.store.create("persistentvolumeclaims", "default", claim)
        bound = await c.wait_for(
            lambda: c.get_if(
                "persistentvolumeclaims",
                "default",
                "scratch",
                lambda p: (p.get("status") or {}).get("phase") == "Bound",
            ),
            5,
            "bound at once (Immediate)",
        )
        volume = bound["spec"]["volumeName"]
        assert c.events("ProvisioningSucceeded", "scratch")[0]["message"] == (
            f"Successfully provisioned volume {volume}"
        )
        c.store.delete("persistentvolumeclaims", "default", "scratch")
        await c.wait_for(
            lambda: c.get_if("persistentvolumes", None, volume, lambda v: True) is None,
            5,
            "volume deleted (reclaimPolicy Delete)",
        )

    run(scenario)
