"""NodeResourcesFit and NodeResourcesBalancedAllocation.

pkg/scheduler/framework/plugins/noderesources/fit.go, least_allocated.go,
balanced_allocation.go, resource_allocation.go.

Fit filters on the pod count and on each requested resource against allocatable minus the
requests of the pods bound to the node: every shortfall is one reason ("Insufficient cpu",
"Insufficient memory", "Too many pods"); a request above the node's whole allocatable is
UnschedulableAndUnresolvable, since no preemption can free that much. Its score is
LeastAllocated over cpu and memory (weights 1), on the requests with upstream's non-zero
defaults for containers that ask for nothing (100m cpu, 200Mi memory). BalancedAllocation
prefers nodes whose cpu and memory fractions stay close.
"""

from __future__ import annotations

from pytest_k8sdr.sim.controllers.scheduler.framework import (
    EVENT_ASSIGNED_POD_DELETE,
    EVENT_ASSIGNED_POD_UPDATE,
    EVENT_NODE_ADD,
    EVENT_NODE_UPDATE,
    MAX_NODE_SCORE,
    CycleState,
    FilterPlugin,
    NodeInfo,
    PodInfo,
    ScorePlugin,
    Status,
)

__all__ = ["NodeResourcesBalancedAllocation", "NodeResourcesFit", "insufficient"]

_EVENTS = frozenset(
    {EVENT_NODE_ADD, EVENT_NODE_UPDATE, EVENT_ASSIGNED_POD_DELETE, EVENT_ASSIGNED_POD_UPDATE}
)
# Resources a node always has a figure for (0 when absent), as framework.Resource's fields.
_BASIC = ("cpu", "memory", "ephemeral-storage")


def insufficient(pod: PodInfo, node: NodeInfo) -> Status | None:
    """fitsRequest: the shortfalls of `node` for `pod`, or None when it fits."""
    allocatable = node.allocatable
    requested = node.requested
    reasons: list[str] = []
    unresolvable = False
    if requested["pods"] + 1 > allocatable.get("pods", 0.0):
        reasons.append("Too many pods")
    for resource, amount in pod.requests.items():
        if amount <= 0:
            continue
        if resource.startswith("hugepages-") or resource in _BASIC or "/" in resource:
            have = allocatable.get(resource, 0.0)
            if amount > have - requested.get(resource, 0.0) + 1e-9:
                reasons.append(f"Insufficient {resource}")
                unresolvable = unresolvable or amount > have + 1e-9
    if not reasons:
        return None
    if unresolvable:
        return Status.unresolvable(*reasons)
    return Status.unschedulable(*reasons)


class NodeResourcesFit(FilterPlugin, ScorePlugin):
    """Requests against allocatable; LeastAllocated scoring."""

    name = "NodeResourcesFit"
    events = _EVENTS

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        """Every shortfall as a reason."""
        return insufficient(pod, node)

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> float:
        """The leastRequestedScore averaged over cpu and memory."""
        total = 0.0
        for i, resource in enumerate(("cpu", "memory")):
            capacity = node.allocatable.get(resource, 0.0)
            used = node.non_zero_requested[i] + pod.non_zero[i]
            if capacity > 0 and used <= capacity:
                total += (capacity - used) * MAX_NODE_SCORE / capacity
        return total / 2


class NodeResourcesBalancedAllocation(ScorePlugin):
    """Balanced cpu and memory use."""

    name = "NodeResourcesBalancedAllocation"
    events = _EVENTS

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> float:
        """(1 - standard deviation of the requested fractions) * 100."""
        fractions = []
        for resource in ("cpu", "memory"):
            capacity = node.allocatable.get(resource, 0.0)
            if capacity <= 0:
                continue
            used = node.requested.get(resource, 0.0) + pod.requests.get(resource, 0.0)
            fractions.append(min(used / capacity, 1.0))
        if len(fractions) < 2:
            return float(MAX_NODE_SCORE)
        std = abs(fractions[0] - fractions[1]) / 2
        return (1 - std) * MAX_NODE_SCORE
