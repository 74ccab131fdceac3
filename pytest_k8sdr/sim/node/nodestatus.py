"""The NodeStatus a kubelet computes (pkg/kubelet/nodestatus/setters.go).

The conditions the kubelet owns, in its order; transition times move only when a condition's
status changes. Posting it (every status period when changed, every report period anyway) is
the kubelet's status loop.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from pytest_k8sdr.sim.apimachinery.clock import rfc3339
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.node.nodespec import KUBELET_VERSION, RUNTIME_VERSION, NodeSpec

__all__ = ["NodeIds", "node_status", "ready_condition", "status_signature"]

# pkg/kubelet/nodestatus/setters.go: the conditions the kubelet owns, in its order.
PRESSURE_CONDITIONS = (
    ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
)


@dataclass(frozen=True)
class NodeIds:
    """The machine's identities; computed once (1,000 hollow kubelets report every second)."""

    machine_id: str
    system_uuid: str
    boot_id: str

    @classmethod
    def of(cls, name: str, boot_id: str) -> NodeIds:
        """Stable ids derived from the node's name, and the runtime's boot id."""
        return cls(
            uuid.uuid5(uuid.NAMESPACE_DNS, name).hex,
            str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
            boot_id,
        )


def ready_condition(runtime_up: bool, runtime_checked_at: float) -> tuple[str, str, str]:
    """(status, reason, message) of the Ready condition the kubelet would post now."""
    if not runtime_up:
        return "False", "KubeletNotReady", "container runtime is down"
    if time.monotonic() < runtime_checked_at:
        return (
            "False",
            "KubeletNotReady",
            "container runtime status check may not have completed yet",
        )
    return "True", "KubeletReady", "kubelet is posting ready status"


def node_status(
    spec: NodeSpec, ready: tuple[str, str, str], ids: NodeIds, existing: JSON | None
) -> JSON:
    """The NodeStatus the kubelet computes, keeping transition times of unchanged conditions."""
    now = rfc3339()
    old = {c.get("type"): c for c in ((existing or {}).get("status") or {}).get("conditions") or []}
    wanted = [(t, "False", r, m) for t, r, m in PRESSURE_CONDITIONS]
    wanted.append(("Ready", *ready))
    conditions = []
    for ctype, status, reason, message in wanted:
        prior = old.get(ctype) or {}
        transition = prior.get("lastTransitionTime") if prior.get("status") == status else None
        conditions.append(
            {
                "type": ctype,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": transition or now,
            }
        )
    resources = {
        "cpu": spec.cpu,
        "memory": spec.memory,
        "pods": str(spec.max_pods),
        "ephemeral-storage": "100Gi",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
    }
    return {
        "conditions": conditions,
        "addresses": [
            {"type": "InternalIP", "address": spec.address},
            {"type": "Hostname", "address": spec.name},
        ],
        "capacity": resources,
        "allocatable": dict(resources),
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": ids.machine_id,
            "systemUUID": ids.system_uuid,
            "bootID": ids.boot_id,
            "kernelVersion": "6.1.0-k8sdr-sim",
            "osImage": "k8sdr simulated node",
            "containerRuntimeVersion": RUNTIME_VERSION,
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": KUBELET_VERSION,
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    }


def status_signature(status: JSON) -> Any:
    """What decides whether a status changed: conditions, addresses, allocatable, nodeInfo."""
    conditions = sorted(
        (c.get("type"), c.get("status"), c.get("reason"), c.get("message"))
        for c in status.get("conditions") or []
    )
    addresses = sorted((a.get("type"), a.get("address")) for a in status.get("addresses") or [])
    return (
        conditions,
        addresses,
        sorted((status.get("allocatable") or {}).items()),
        sorted((status.get("nodeInfo") or {}).items()),
    )
