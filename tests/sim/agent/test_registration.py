"""Registration, heartbeats and the re-registration rules (reference §1, §4, §5)."""

from __future__ import annotations

import ipaddress
import itertools
import json
import re
import time
from typing import Any

from kubernetes import watch

from tests.sim.agent.agentsim import (
    Server,
    create_pod,
    is_ready,
    make_pod,
    pod_ready,
    wait_for,
    wait_gone,
)

MICROTIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def _ready_history(sim_server: Server, name: str, timeout: float = 10.0) -> list[tuple[str, str]]:
    """(status, reason) of the node's Ready condition as it changes, until it is True."""
    seen: list[tuple[str, str]] = []
    w = watch.Watch()
    for event in w.stream(
        sim_server.core.list_node,
        field_selector=f"metadata.name={name}",
        timeout_seconds=int(timeout),
    ):
        node = event["object"]
        for c in node.status.conditions or []:
            if c.type == "Ready" and (not seen or seen[-1] != (c.status, c.reason)):
                seen.append((c.status, c.reason))
        if seen and seen[-1][0] == "True":
            w.stop()
    return seen


def test_registers_with_flag_labels_taints_and_status(sim_server: Server, make_agent: Any) -> None:
    agent = make_agent(
        labels="tier=web,node.kubernetes.io/pool=a",
        taints="dedicated=db:NoSchedule,spot:NoExecute",
        zone="z1",
    )
    history = _ready_history(sim_server, agent.name)
    # upstream-observed.md: a (re)registered node is Ready=False KubeletNotReady first.
    assert history[0] == ("False", "KubeletNotReady")
    assert history[-1] == ("True", "KubeletReady")

    node = sim_server.core.read_node(agent.name)
    labels = node.metadata.labels
    assert labels["kubernetes.io/hostname"] == agent.name
    assert labels["kubernetes.io/os"] == "linux"
    assert labels["kubernetes.io/arch"] == "amd64"
    assert labels["topology.kubernetes.io/zone"] == "z1"
    assert labels["tier"] == "web"
    assert labels["node.kubernetes.io/pool"] == "a"
    assert (
        node.metadata.annotations["volumes.kubernetes.io/controller-managed-attach-detach"]
        == "true"
    )
    taints = {(t.key, t.value, t.effect) for t in node.spec.taints}
    assert taints == {("dedicated", "db", "NoSchedule"), ("spot", None, "NoExecute")}
    assert node.spec.pod_cidr == agent.pod_cidr
    assert node.spec.pod_cidrs == [agent.pod_cidr]
    assert {(a.type, a.address) for a in node.status.addresses} == {
        ("InternalIP", agent.address),
        ("Hostname", agent.name),
    }
    assert node.status.capacity["cpu"] == "2"
    assert node.status.allocatable["pods"] == "110"
    info = node.status.node_info
    assert info.kubelet_version.startswith("v1.33")
    assert info.container_runtime_version == "k8sdr-sim://1"
    assert (info.operating_system, info.architecture) == ("linux", "amd64")
    conditions = {c.type: (c.status, c.reason) for c in node.status.conditions}
    assert conditions == {
        "MemoryPressure": ("False", "KubeletHasSufficientMemory"),
        "DiskPressure": ("False", "KubeletHasNoDiskPressure"),
        "PIDPressure": ("False", "KubeletHasSufficientPID"),
        "Ready": ("True", "KubeletReady"),
    }
    assert node.status.daemon_endpoints.kubelet_endpoint.port == 10250


def test_lease_is_renewed_every_quarter_of_its_duration(
    sim_server: Server, make_agent: Any
) -> None:
    agent = make_agent()
    node = wait_for(
        sim_server.core.list_node, is_ready, field_selector=f"metadata.name={agent.name}"
    )
    renewals: list[float] = []
    lease: Any = None
    w = watch.Watch()
    for event in w.stream(
        sim_server.coord.list_namespaced_lease,
        "kube-node-lease",
        field_selector=f"metadata.name={agent.name}",
        timeout_seconds=10,
    ):
        lease = event["object"]
        renewals.append(time.monotonic())
        if len(renewals) >= 6:
            w.stop()
    assert lease is not None
    assert len(renewals) >= 6
    gaps = [b - a for a, b in itertools.pairwise(renewals)]  # the first is the listing
    # fast profile: lease 4s, renewed every 1s (+ up to 4% jitter).
    assert 0.8 <= sum(gaps) / len(gaps) <= 1.3, gaps
    assert max(gaps) < 2.0, gaps
    assert lease.spec.holder_identity == agent.name
    assert lease.spec.lease_duration_seconds == 4
    raw = json.loads(
        sim_server.coord.read_namespaced_lease(
            agent.name, "kube-node-lease", _preload_content=False
        ).data
    )
    assert MICROTIME.match(raw["spec"]["renewTime"]), raw["spec"]["renewTime"]
    owner = lease.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid) == ("Node", agent.name, node.metadata.uid)


def test_status_is_written_on_change_not_every_period(sim_server: Server, make_agent: Any) -> None:
    agent = make_agent()
    node = wait_for(
        sim_server.core.list_node, is_ready, field_selector=f"metadata.name={agent.name}"
    )
    rv = node.metadata.resource_version
    time.sleep(2.5)  # 2.5 status periods with nothing to report (report frequency is 60s)
    assert sim_server.core.read_node(agent.name).metadata.resource_version == rv
    agent.ctl("stop-runtime")
    node = wait_for(
        sim_server.core.list_node,
        lambda n: any(c.type == "Ready" and c.status == "False" for c in n.status.conditions),
        field_selector=f"metadata.name={agent.name}",
        timeout=3,
    )
    ready = next(c for c in node.status.conditions if c.type == "Ready")
    assert (ready.reason, ready.message) == ("KubeletNotReady", "container runtime is down")
    agent.ctl("start-runtime")
    wait_for(
        sim_server.core.list_node, is_ready, field_selector=f"metadata.name={agent.name}", timeout=4
    )


def test_restart_with_node_kept_keeps_hand_made_changes(
    sim_server: Server, make_agent: Any
) -> None:
    agent = make_agent(labels="flag=one")
    node = wait_for(
        sim_server.core.list_node, is_ready, field_selector=f"metadata.name={agent.name}"
    )
    uid = node.metadata.uid
    sim_server.core.patch_node(
        agent.name,
        {
            "metadata": {
                "labels": {
                    "node-role.kubernetes.io/worker": "",
                    "hand": "made",
                    "kubernetes.io/hostname": "tampered",
                }
            },
            "spec": {"unschedulable": True, "taints": [{"key": "manual", "effect": "NoSchedule"}]},
        },
    )
    agent.kill()
    # Restarted with different flags: they are not re-applied to an existing Node (§5).
    agent.argv[agent.argv.index("flag=one")] = "flag=two,other=x"
    agent.start()
    node = wait_for(
        sim_server.core.list_node,
        lambda n: is_ready(n) and n.metadata.labels.get("kubernetes.io/hostname") == agent.name,
        field_selector=f"metadata.name={agent.name}",
    )
    assert node.metadata.uid == uid
    labels = node.metadata.labels
    assert labels["hand"] == "made"
    assert "node-role.kubernetes.io/worker" in labels
    assert labels["flag"] == "one"
    assert "other" not in labels
    assert node.spec.unschedulable is True
    assert [t.key for t in node.spec.taints] == ["manual"]


def test_restart_after_node_deleted_registers_a_fresh_node(
    sim_server: Server, make_agent: Any
) -> None:
    agent = make_agent(labels="flag=one", taints="dedicated=x:NoSchedule")
    node = wait_for(
        sim_server.core.list_node, is_ready, field_selector=f"metadata.name={agent.name}"
    )
    sim_server.core.patch_node(
        agent.name, {"metadata": {"labels": {"hand": "made"}}, "spec": {"unschedulable": True}}
    )
    agent.kill()
    sim_server.core.delete_node(agent.name)
    wait_gone(sim_server.core.list_node, agent.name)
    agent.start()
    fresh = wait_for(
        sim_server.core.list_node, is_ready, field_selector=f"metadata.name={agent.name}"
    )
    assert fresh.metadata.uid != node.metadata.uid
    assert "hand" not in fresh.metadata.labels
    assert fresh.metadata.labels["flag"] == "one"
    assert not fresh.spec.unschedulable
    assert [(t.key, t.effect) for t in fresh.spec.taints] == [("dedicated", "NoSchedule")]


def test_running_agent_does_not_reregister_but_keeps_renewing(
    sim_server: Server, make_agent: Any
) -> None:
    agent = make_agent()
    wait_for(sim_server.core.list_node, is_ready, field_selector=f"metadata.name={agent.name}")
    sim_server.core.delete_node(agent.name)
    wait_gone(sim_server.core.list_node, agent.name)
    before = agent.ctl("status")["leaseRenewals"]
    time.sleep(3)  # three lease periods and three status periods
    assert sim_server.core.list_node(field_selector=f"metadata.name={agent.name}").items == []
    state = agent.ctl("status")
    assert state["leaseRenewals"] >= before + 2
    assert state["registered"]
    assert not state["nodeKnown"]
    lease = sim_server.coord.read_namespaced_lease(agent.name, "kube-node-lease")
    assert lease.spec.holder_identity == agent.name


def test_hollow_mode_registers_n_nodes_and_runs_their_pods(
    sim_server: Server, make_agent: Any
) -> None:
    agent = make_agent(hollow=5)
    names = [f"{agent.name}-{i}" for i in range(5)]
    for name in names:
        wait_for(
            sim_server.core.list_node, is_ready, field_selector=f"metadata.name={name}", timeout=15
        )
    addresses = {sim_server.core.read_node(n).status.addresses[0].address for n in names}
    assert len(addresses) == 5
    leases = sim_server.coord.list_namespaced_lease("kube-node-lease").items
    assert set(names) <= {lease.metadata.name for lease in leases}
    # Hollow pods run through their lifecycle in the API (they are not served over sockets).
    pod = f"{names[3]}-pod"
    create_pod(sim_server, make_pod(pod, names[3]))
    running = wait_for(
        sim_server.core.list_namespaced_pod,
        pod_ready,
        namespace="default",
        field_selector=f"metadata.name={pod}",
    )
    node = sim_server.core.read_node(names[3])
    assert ipaddress.ip_address(running.status.pod_ip) in ipaddress.ip_network(node.spec.pod_cidr)
    state = agent.ctl("status")
    assert state["hollow"]
    assert [n["name"] for n in state["nodes"]] == names
