"""DefaultTolerationSeconds admission (plugin/pkg/admission/defaulttolerationseconds/admission.go).

Pods that do not already tolerate the not-ready / unreachable NoExecute taints get both with
the profile's tolerationSeconds (kube-apiserver's --default-*-toleration-seconds, 300 upstream).
The controller manager switches it like a controller (`controllers.admissionswitch`).
"""

from __future__ import annotations

from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.apimachinery.wellknown import TAINT_NOT_READY, TAINT_UNREACHABLE
from pytest_k8sdr.sim.apiserver.admission import MutatingPlugin

__all__ = ["NAME", "add_default_tolerations", "plugin"]

NAME = "DefaultTolerationSeconds"


def add_default_tolerations(pod: JSON, not_ready_seconds: int, unreachable_seconds: int) -> None:
    """Append the two default tolerations unless the pod tolerates the keys already."""
    spec = pod.setdefault("spec", {})
    tolerations: list[JSON] = list(spec.get("tolerations") or [])
    tol_not_ready = tol_unreachable = False
    for tol in tolerations:
        key = tol.get("key") or ""
        effect = tol.get("effect") or ""
        if effect not in ("", "NoExecute"):
            continue
        # An empty key (with operator Exists) tolerates every taint.
        if key in ("", TAINT_NOT_READY):
            tol_not_ready = True
        if key in ("", TAINT_UNREACHABLE):
            tol_unreachable = True
    if not tol_not_ready:
        tolerations.append(
            {
                "key": TAINT_NOT_READY,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": not_ready_seconds,
            }
        )
    if not tol_unreachable:
        tolerations.append(
            {
                "key": TAINT_UNREACHABLE,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": unreachable_seconds,
            }
        )
    spec["tolerations"] = tolerations


def plugin(not_ready_seconds: int, unreachable_seconds: int) -> MutatingPlugin:
    """The admission plugin for pods, with these tolerationSeconds."""

    def admit(operation: str, new: JSON, old: JSON | None) -> None:
        if operation in ("CREATE", "UPDATE"):
            add_default_tolerations(new, not_ready_seconds, unreachable_seconds)

    return admit
