"""DefaultTolerationSeconds admission (plugin/pkg/admission/defaulttolerationseconds/admission.go).

Pods that do not already tolerate the not-ready / unreachable NoExecute taints get both with
the profile's tolerationSeconds (kube-apiserver's --default-*-toleration-seconds, 300 upstream).
"""

from __future__ import annotations

import asyncio

from pytest_k8sdr.sim.controllers._base import (
    JSON,
    TAINT_NOT_READY,
    TAINT_UNREACHABLE,
    Controller,
)

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


class DefaultTolerationSeconds(Controller):
    """The admission plugin, switchable like a controller; it runs no task."""

    name = NAME

    def start(self) -> list[asyncio.Task[None]]:
        """Register the mutating admission hook for pods."""
        p = self.profile

        def hook(operation: str, new: JSON, old: JSON | None) -> None:
            if operation in ("CREATE", "UPDATE"):
                add_default_tolerations(
                    new,
                    p.default_not_ready_toleration_seconds,
                    p.default_unreachable_toleration_seconds,
                )

        self.on_stop(self.store.add_admission("pods", hook))
        return []
