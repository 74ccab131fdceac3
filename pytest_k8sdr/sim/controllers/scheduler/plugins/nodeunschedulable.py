"""NodeUnschedulable (pkg/scheduler/framework/plugins/nodeunschedulable/node_unschedulable.go).

A node with spec.unschedulable (cordoned) takes only pods tolerating
`node.kubernetes.io/unschedulable:NoSchedule`.
"""

from __future__ import annotations

from pytest_k8sdr.sim.apimachinery.wellknown import TAINT_UNSCHEDULABLE
from pytest_k8sdr.sim.controllers.scheduler.framework import (
    EVENT_NODE_ADD,
    EVENT_NODE_UPDATE,
    CycleState,
    FilterPlugin,
    NodeInfo,
    PodInfo,
    Status,
)
from pytest_k8sdr.sim.controllers.taints import tolerates

__all__ = ["NodeUnschedulable"]

_TAINT = {"key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule"}
REJECTED = Status.unresolvable("node(s) were unschedulable")


class NodeUnschedulable(FilterPlugin):
    """Rejects cordoned nodes."""

    name = "NodeUnschedulable"
    events = frozenset({EVENT_NODE_ADD, EVENT_NODE_UPDATE})

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        """ErrReasonUnschedulable, UnschedulableAndUnresolvable."""
        if (node.node.get("spec") or {}).get("unschedulable") and not tolerates(
            pod.tolerations, _TAINT
        ):
            return REJECTED
        return None
