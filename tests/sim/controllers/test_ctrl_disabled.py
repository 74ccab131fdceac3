"""Each controller switched off: the scenario it heals does not heal (so checks can fail)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from ctrl_support import TEST_PROFILE, Cluster, condition, ready_pods, run, taints

from pytest_k8sdr.sim import Store
from pytest_k8sdr.sim.controllers import CONTROLLERS, start_controllers
from pytest_k8sdr.sim.profiles import FAST, Profile

JSON = dict[str, Any]
UNREACHABLE_NE = ("node.kubernetes.io/unreachable", "NoExecute")


async def _web_on_three(c: Cluster, n: int = 3) -> str:
    for name in ("w1", "w2", "w3"):
        c.add_node(name)
    c.deployment("web", n)
    await c.wait_for(lambda: ready_pods(c, "app=web", n), 5, "web ready")
    return "w1"


async def node_death_heals(c: Cluster) -> None:
    """Kill a node: its web pods must be replaced elsewhere."""
    victim = await _web_on_three(c)
    c.kubelets[victim].kill()
    await c.wait_for(lambda: ready_pods(c, "app=web", 3, avoid=victim), 6, "web healed elsewhere")


async def node_goes_unknown(c: Cluster) -> None:
    """Kill a node: it must turn Ready=Unknown."""
    c.add_node("w1")
    c.add_node("w2")
    c.kubelets["w1"].kill()
    await c.wait_for(
        lambda: (condition(c.node("w1"), "Ready") or {}).get("status") == "Unknown", 3, "Unknown"
    )


async def node_deletion_releases_statefulset(c: Cluster) -> None:
    """Delete a dead node: its StatefulSet pod must come back elsewhere."""
    c.add_node("w1")
    c.add_node("w2")
    c.statefulset("db", 1)
    await c.wait_for(lambda: ready_pods(c, "app=db", 1), 5, "db ready")
    victim = c.store.get("pods", "default", "db-0")["spec"]["nodeName"]
    c.kubelets[victim].kill()
    await c.wait_for(lambda: UNREACHABLE_NE in taints(c.node(victim)), 4, "tainted")
    c.store.delete("nodes", None, victim)
    await c.wait_for(lambda: ready_pods(c, "app=db", 1, avoid=victim), 4, "db-0 back elsewhere")


async def endpoints_follow_pods(c: Cluster) -> None:
    """A Ready pod appears in the EndpointSlice and Endpoints."""
    c.add_node("w1")
    c.deployment("web", 1)
    await c.wait_for(lambda: ready_pods(c, "app=web", 1), 5, "web ready")
    await c.wait_for(
        lambda: any(
            ep["conditions"]["ready"] for s in c.slices("web") for ep in s.get("endpoints") or []
        ),
        2,
        "ready endpoint in a slice",
    )


async def legacy_endpoints(c: Cluster) -> None:
    """A Ready pod appears in the Endpoints object."""
    c.add_node("w1")
    c.deployment("web", 1)
    await c.wait_for(lambda: ready_pods(c, "app=web", 1), 5, "web ready")
    await c.wait_for(
        lambda: c.get_if(
            "endpoints",
            "default",
            "web",
            lambda e: any(s.get("addresses") for s in e.get("subsets") or []),
        ),
        2,
        "address in Endpoints",
    )


async def rollout_restart(c: Cluster) -> None:
    """A template annotation change rolls every pod."""
    c.add_node("w1")
    c.deployment("web", 2)
    before = {
        p["metadata"]["name"]
        for p in await c.wait_for(lambda: ready_pods(c, "app=web", 2), 5, "ready")
    }
    dep = c.store.get("deployments", "default", "web")
    dep["spec"]["template"]["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/restartedAt": "now"
    }
    c.store.update("deployments", "default", "web", dep)
    await c.wait_for(
        lambda: (
            (pods := ready_pods(c, "app=web", 2))
            and not before & {p["metadata"]["name"] for p in pods}
            and len(c.pods(selector="app=web")) == 2
        ),
        10,
        "all pods replaced",
    )


async def daemonset_runs_everywhere(c: Cluster) -> None:
    """A DaemonSet gets a pod on each node."""
    c.add_node("w1")
    c.add_node("w2")
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
    await c.wait_for(lambda: ready_pods(c, "app=agent", 2), 3, "two agent pods")


async def namespace_deletion(c: Cluster) -> None:
    """Deleting a namespace empties and removes it."""
    c.store.create("namespaces", None, {"metadata": {"name": "gone"}})
    c.store.create("configmaps", "gone", {"metadata": {"name": "cm"}, "data": {}})
    c.store.delete("namespaces", None, "gone")
    await c.wait_for(
        lambda: (
            not any(n["metadata"]["name"] == "gone" for n in c.store.list("namespaces")["items"])
        ),
        3,
        "namespace gone",
    )


async def pdb_status(c: Cluster) -> None:
    """A PDB gets a status."""
    c.add_node("w1")
    c.deployment("web", 2)
    await c.wait_for(lambda: ready_pods(c, "app=web", 2), 5, "ready")
    c.store.create(
        "poddisruptionbudgets",
        "default",
        {
            "metadata": {"name": "p"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "maxUnavailable": 1},
        },
    )
    await c.wait_for(
        lambda: c.get_if(
            "poddisruptionbudgets",
            "default",
            "p",
            lambda p: (p.get("status") or {}).get("disruptionsAllowed") == 1,
        ),
        2,
        "pdb status",
    )


async def default_tolerations(c: Cluster) -> None:
    """New pods get the default 300s-style NoExecute tolerations."""
    pod = c.store.create(
        "pods",
        "default",
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
    )
    keys = {
        (t.get("key"), t.get("tolerationSeconds")) for t in pod["spec"].get("tolerations") or []
    }
    assert (
        "node.kubernetes.io/unreachable",
        c.profile.default_unreachable_toleration_seconds,
    ) in keys


async def scheduled(c: Cluster) -> None:
    """A pod gets bound to the only node."""
    c.add_node("w1")
    c.store.create(
        "pods",
        "default",
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
    )
    await c.wait_for(
        lambda: c.get_if("pods", "default", "p", lambda p: p["spec"].get("nodeName")), 2, "bound"
    )


async def terminated_gc(c: Cluster) -> None:
    """Terminated pods above the threshold are collected."""
    for i in range(3):
        c.store.create(
            "pods",
            "default",
            {
                "metadata": {"name": f"done-{i}"},
                "spec": {"nodeName": "gone", "containers": [{"name": "c", "image": "x"}]},
            },
        )
        pod = c.store.get("pods", "default", f"done-{i}")
        pod["status"]["phase"] = "Succeeded"
        c.store.update("pods", "default", f"done-{i}", pod, subresource="status")
    await c.wait_for(
        lambda: len(c.pods()) == 1, 3, "terminated pods collected down to the threshold"
    )


async def default_account(c: Cluster) -> None:
    """A new namespace gets its default ServiceAccount."""
    c.store.create("namespaces", None, {"metadata": {"name": "team"}})
    await c.wait_for(
        lambda: c.get_if("serviceaccounts", "team", "default", bool), 2, "default account"
    )


async def root_ca(c: Cluster) -> None:
    """A new namespace gets the kube-root-ca.crt ConfigMap."""
    c.store.create("namespaces", None, {"metadata": {"name": "team"}})
    await c.wait_for(lambda: c.get_if("configmaps", "team", "kube-root-ca.crt", bool), 2, "root ca")


def _plain_pod(c: Cluster, name: str, **spec: object) -> JSON:
    return c.store.create(
        "pods",
        "default",
        {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "x"}], **spec}},
    )


async def token_volume(c: Cluster) -> None:
    """A new pod gets the projected service-account token volume."""
    pod = _plain_pod(c, "p")
    assert pod["spec"].get("volumes"), "token volume"


async def priority_resolved(c: Cluster) -> None:
    """A pod's priority comes from its class."""
    pod = _plain_pod(c, "p", priorityClassName="system-node-critical")
    assert pod["spec"].get("priority") == 2_000_001_000, "priority"


def _network_claim(c: Cluster, class_name: str | None = "network") -> None:
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    if class_name is not None:
        spec["storageClassName"] = class_name
    c.store.create("persistentvolumeclaims", "default", {"metadata": {"name": "d"}, "spec": spec})


async def claim_gets_default_class(c: Cluster) -> None:
    """A claim without a class gets the default one, `standard`."""
    _network_claim(c, None)
    claim = c.store.get("persistentvolumeclaims", "default", "d")
    assert claim["spec"].get("storageClassName") == "standard", "default class"


async def network_claim_provisioned(c: Cluster) -> None:
    """A network claim gets a volume made for it."""
    _network_claim(c)
    await c.wait_for(lambda: c.store.list("persistentvolumes")["items"], 2, "volume provisioned")


async def network_claim_bound(c: Cluster) -> None:
    """A network claim is bound."""
    _network_claim(c)
    await c.wait_for(
        lambda: c.get_if(
            "persistentvolumeclaims", "default", "d", lambda p: p["spec"].get("volumeName")
        ),
        2,
        "claim bound",
    )


_BATCH_TEMPLATE = {
    "spec": {
        "restartPolicy": "Never",
        "containers": [{"name": "c", "image": "busybox:1.36"}],
    }
}


async def job_pod_created(c: Cluster) -> None:
    """A Job gets its pod."""
    c.store.create(
        "jobs", "default", {"metadata": {"name": "j"}, "spec": {"template": _BATCH_TEMPLATE}}
    )
    await c.wait_for(
        lambda: [
            p
            for p in c.store.list("pods", "default")["items"]
            if (p["metadata"].get("labels") or {}).get("batch.kubernetes.io/job-name") == "j"
        ],
        2,
        "job pod",
    )


async def cronjob_schedules(c: Cluster) -> None:
    """A CronJob makes its Job once its clock passes the schedule."""
    c.store.create(
        "cronjobs",
        "default",
        {
            "metadata": {"name": "cj"},
            "spec": {
                "schedule": "* * * * *",
                "jobTemplate": {"spec": {"template": _BATCH_TEMPLATE}},
            },
        },
    )
    c.controllers.clock.advance(60)
    await c.wait_for(lambda: c.store.list("jobs", "default")["items"], 2, "scheduled job")


async def finished_job_expires(c: Cluster) -> None:
    """A finished Job with ttlSecondsAfterFinished 0 is deleted."""
    job = c.store.create(
        "jobs",
        "default",
        {
            "metadata": {"name": "ttl"},
            "spec": {"ttlSecondsAfterFinished": 0, "suspend": True, "template": _BATCH_TEMPLATE},
        },
    )
    job["status"] = {
        "conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]
    }
    c.store.update("jobs", "default", "ttl", job, subresource="status")
    await c.wait_for(lambda: not c.store.list("jobs", "default")["items"], 2, "job expired")


SCENARIOS: dict[str, Callable[[Cluster], Awaitable[None]]] = {
    "nodelifecycle": node_goes_unknown,
    "taint-eviction-controller": node_death_heals,
    "scheduler": scheduled,
    "replicaset": node_death_heals,
    "deployment": rollout_restart,
    "statefulset": node_deletion_releases_statefulset,
    "daemonset": daemonset_runs_everywhere,
    "job": job_pod_created,
    "cronjob": cronjob_schedules,
    "ttl-after-finished": finished_job_expires,
    "podgc": node_deletion_releases_statefulset,
    "endpointslice": endpoints_follow_pods,
    "endpoint": legacy_endpoints,
    "namespace": namespace_deletion,
    "disruption": pdb_status,
    "DefaultTolerationSeconds": default_tolerations,
    "serviceaccount": default_account,
    "root-ca-certificate-publisher": root_ca,
    "ServiceAccount": token_volume,
    "Priority": priority_resolved,
    "DefaultStorageClass": claim_gets_default_class,
    "local-path-provisioner": network_claim_provisioned,
    "persistentvolume-binder": network_claim_bound,
}


def test_every_controller_has_a_scenario() -> None:
    assert set(SCENARIOS) == set(CONTROLLERS)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_heals_with_everything_on(name: str) -> None:
    run(SCENARIOS[name])


# The step that must fail when the controller is off.
FAILING_STEP = {
    "nodelifecycle": "Unknown",
    "taint-eviction-controller": "web healed elsewhere",
    "scheduler": "bound",
    "replicaset": "web ready",
    "deployment": "ready",
    "statefulset": "db ready",
    "daemonset": "two agent pods",
    "job": "job pod",
    "cronjob": "scheduled job",
    "ttl-after-finished": "job expired",
    "podgc": "db-0 back elsewhere",
    "endpointslice": "ready endpoint in a slice",
    "endpoint": "address in Endpoints",
    "namespace": "namespace gone",
    "disruption": "pdb status",
    "DefaultTolerationSeconds": "unreachable",
    "serviceaccount": "default account",
    "root-ca-certificate-publisher": "root ca",
    "ServiceAccount": "token volume",
    "Priority": "priority",
    "DefaultStorageClass": "default class",
    "local-path-provisioner": "volume provisioned",
    "persistentvolume-binder": "claim bound",
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_fails_with_the_controller_disabled(name: str) -> None:
    with pytest.raises(AssertionError, match=FAILING_STEP[name]):
        run(SCENARIOS[name], disabled={name})


def _gc_profile() -> Profile:
    return TEST_PROFILE.replace(terminated_pod_gc_threshold=1)


def test_terminated_pod_gc_threshold() -> None:
    run(terminated_gc, profile=_gc_profile())
    with pytest.raises(AssertionError):
        run(terminated_gc, profile=_gc_profile(), disabled={"podgc"})


def test_unknown_controller_name_is_refused_before_anything_starts() -> None:
    store = Store()
    with pytest.raises(
        ValueError, match=r"unknown controller.*nodelifecyle.*accepted: .*nodelifecycle"
    ):
        start_controllers(store, FAST, {"nodelifecyle"})
    assert store.subresource_handler("pods", "eviction") is None
