"""Pod and node status helpers.

pkg/api/v1/pod/util.go, pkg/controller/controller_utils.go, pkg/api/v1/resource/helpers.go.
"""

from __future__ import annotations

from pytest_k8sdr.sim.apimachinery.clock import now_rfc3339
from pytest_k8sdr.sim.apimachinery.meta import get_condition, is_terminating
from pytest_k8sdr.sim.apimachinery.quantity import parse_quantity
from pytest_k8sdr.sim.apimachinery.types import JSON

__all__ = [
    "node_ready_status",
    "pod_is_active",
    "pod_is_ready",
    "pod_is_terminal",
    "pod_phase",
    "pod_requests",
    "set_pod_condition",
]


def pod_phase(pod: JSON) -> str:
    """status.phase, Pending when unset."""
    return str((pod.get("status") or {}).get("phase") or "Pending")


def pod_is_terminal(pod: JSON) -> bool:
    """Succeeded or Failed."""
    return pod_phase(pod) in ("Succeeded", "Failed")


def pod_is_active(pod: JSON) -> bool:
    """Not terminal and not being deleted (pkg/controller/controller_utils.go IsPodActive)."""
    return not pod_is_terminal(pod) and not is_terminating(pod)


def pod_is_ready(pod: JSON) -> bool:
    """The pod's Ready condition is True (pkg/api/v1/pod/util.go IsPodReady)."""
    cond = get_condition((pod.get("status") or {}).get("conditions"), "Ready")
    return bool(cond and cond.get("status") == "True")


def node_ready_status(node: JSON) -> str | None:
    """Status of the node's Ready condition ("True", "False", "Unknown") or None when absent."""
    cond = get_condition((node.get("status") or {}).get("conditions"), "Ready")
    return None if cond is None else str(cond.get("status"))


def set_pod_condition(status: JSON, cond: JSON) -> bool:
    """Upsert a pod condition as pkg/api/v1/pod/util.go UpdatePodCondition; True if changed.

    lastTransitionTime moves only when the status changes.
    """
    now = now_rfc3339()
    conditions: list[JSON] = status.setdefault("conditions", [])
    new = dict(cond)
    new.setdefault("lastProbeTime", None)
    for i, old in enumerate(conditions):
        if old.get("type") != cond["type"]:
            continue
        if old.get("status") != new.get("status"):
            new["lastTransitionTime"] = now
        else:
            new["lastTransitionTime"] = old.get("lastTransitionTime") or now
        same = all(old.get(f) == new.get(f) for f in ("status", "reason", "message"))
        if same:
            return False
        conditions[i] = new
        return True
    new["lastTransitionTime"] = now
    conditions.append(new)
    return True


def pod_requests(pod: JSON) -> dict[str, float]:
    """Effective requests: max(sum of containers, any init container) per resource.

    (pkg/api/v1/resource/helpers.go PodRequests, without overhead and sidecars.)
    """
    spec = pod.get("spec") or {}
    total: dict[str, float] = {}
    for c in spec.get("containers") or ():
        for name, q in ((c.get("resources") or {}).get("requests") or {}).items():
            total[name] = total.get(name, 0.0) + parse_quantity(q)
    for c in spec.get("initContainers") or ():
        for name, q in ((c.get("resources") or {}).get("requests") or {}).items():
            total[name] = max(total.get(name, 0.0), parse_quantity(q))
    return total
