"""NodeAffinity (pkg/scheduler/framework/plugins/nodeaffinity/node_affinity.go).

Filter: spec.nodeSelector and requiredDuringSchedulingIgnoredDuringExecution (the matching
itself is component-helpers' nodeaffinity, `controllers.nodeaffinity`). PreFilter narrows the
nodes when every required term names nodes by `metadata.name` (DaemonSet pods). Score: the sum
of the weights of the preferred terms a node matches, normalized by the highest.
"""

from __future__ import annotations

from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.controllers.nodeaffinity import (
    node_selector_term_matches,
    pod_matches_node_selection,
)
from pytest_k8sdr.sim.controllers.scheduler.framework import (
    EVENT_NODE_ADD,
    EVENT_NODE_UPDATE,
    SKIP,
    CycleState,
    FilterPlugin,
    NodeInfo,
    PodInfo,
    PreFilterPlugin,
    PreScorePlugin,
    ScorePlugin,
    Status,
    normalize_reverse,
)

__all__ = ["NodeAffinity"]

REJECTED = Status.unresolvable("node(s) didn't match Pod's node affinity/selector")


def _node_affinity(pod: PodInfo) -> JSON:
    return ((pod.pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}


def _names_from_fields(pod: PodInfo) -> set[str] | None:
    """getPreFilterNodeNames: node names when every term has a metadata.name In field."""
    required = _node_affinity(pod).get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        return None
    names: set[str] = set()
    for term in terms:
        found: set[str] | None = None
        for f in term.get("matchFields") or ():
            if f.get("key") == "metadata.name" and f.get("operator") == "In":
                values = set(f.get("values") or ())
                found = values if found is None else found & values
        if found is None:
            return None  # one term not naming nodes: any node may match
        names |= found
    return names


class NodeAffinity(PreFilterPlugin, FilterPlugin, PreScorePlugin, ScorePlugin):
    """nodeSelector and node affinity, required and preferred."""

    name = "NodeAffinity"
    events = frozenset({EVENT_NODE_ADD, EVENT_NODE_UPDATE})

    def pre_filter(
        self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]
    ) -> tuple[set[str] | None, Status | None]:
        """Skip without any selector; node names from matchFields terms."""
        spec = pod.pod.get("spec") or {}
        if not spec.get("nodeSelector") and not _node_affinity(pod).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        ):
            return None, SKIP
        return _names_from_fields(pod), None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        """ErrReasonPod, UnschedulableAndUnresolvable."""
        return None if pod_matches_node_selection(pod.pod, node.node) else REJECTED

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        """Skip without preferred terms."""
        preferred = _node_affinity(pod).get("preferredDuringSchedulingIgnoredDuringExecution")
        if not preferred:
            return SKIP
        state.data[self.name] = [
            (int(p.get("weight") or 0), p.get("preference") or {}) for p in preferred
        ]
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> float:
        """Sum of the weights of the matching preferred terms."""
        return float(
            sum(
                weight
                for weight, term in state.data[self.name]
                if weight and node_selector_term_matches(term, node.node)
            )
        )

    def normalize(self, state: CycleState, pod: PodInfo, scores: dict[str, float]) -> None:
        """DefaultNormalizeScore by the highest."""
        normalize_reverse(scores, reverse=False)
