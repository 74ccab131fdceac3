"""NodeName (pkg/scheduler/framework/plugins/nodename/node_name.go).

Pods with spec.nodeName are never queued (kubelet runs them without the scheduler), so this
only matters for a profile that schedules such pods; it is here to keep upstream's filter order.
"""

from __future__ import annotations

from pytest_k8sdr.sim.controllers.scheduler.framework import (
    EVENT_NODE_ADD,
    CycleState,
    FilterPlugin,
    NodeInfo,
    PodInfo,
    Status,
)

__all__ = ["NodeName"]

REJECTED = Status.unresolvable("node(s) didn't match the requested node name")


class NodeName(FilterPlugin):
    """A pod naming a node fits only that node."""

    name = "NodeName"
    events = frozenset({EVENT_NODE_ADD})

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        """ErrReason, UnschedulableAndUnresolvable."""
        wanted = (pod.pod.get("spec") or {}).get("nodeName")
        if wanted and wanted != node.name:
            return REJECTED
        return None
