"""TaintToleration (pkg/scheduler/framework/plugins/tainttoleration/taint_toleration.go).

Filter: the first NoSchedule or NoExecute taint the pod does not tolerate rejects the node
(the default 300 s tolerations are NoExecute-only with a key, so they do not let new pods onto
an unreachable node). Score: fewer untolerated PreferNoSchedule taints score higher.
"""

from __future__ import annotations

from pytest_k8sdr.sim.controllers.scheduler.framework import (
    EVENT_NODE_ADD,
    EVENT_NODE_UPDATE,
    CycleState,
    FilterPlugin,
    NodeInfo,
    PodInfo,
    ScorePlugin,
    Status,
    normalize_reverse,
)
from pytest_k8sdr.sim.controllers.taints import tolerates

__all__ = ["TaintToleration", "untolerated_taint"]

_FILTERED = ("NoSchedule", "NoExecute")


def untolerated_taint(pod: PodInfo, node: NodeInfo) -> dict[str, str] | None:
    """The first NoSchedule/NoExecute taint the pod does not tolerate.

    (v1helper.FindMatchingUntoleratedTaint.)
    """
    for taint in node.taints:
        if taint.get("effect") in _FILTERED and not tolerates(pod.tolerations, taint):
            return taint
    return None


class TaintToleration(FilterPlugin, ScorePlugin):
    """Untolerated taints."""

    name = "TaintToleration"
    events = frozenset({EVENT_NODE_ADD, EVENT_NODE_UPDATE})

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        """`node(s) had untolerated taint {key: value}`, UnschedulableAndUnresolvable."""
        taint = untolerated_taint(pod, node) if node.taints else None
        if taint is None:
            return None
        return Status.unresolvable(
            f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value') or ''}}}"
        )

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> float:
        """How many PreferNoSchedule taints the pod does not tolerate."""
        return float(
            sum(
                1
                for t in node.taints
                if t.get("effect") == "PreferNoSchedule" and not tolerates(pod.tolerations, t)
            )
        )

    def normalize(self, state: CycleState, pod: PodInfo, scores: dict[str, float]) -> None:
        """DefaultNormalizeScore, reversed: no such taint is the best score."""
        normalize_reverse(scores, reverse=True)
