"""Graceful deletion rules of the generic registry (apiserver/pkg/registry/rest/delete.go).

The store applies them; the garbage collector's part (orphaning, foreground deletion) is
asked of `OwnerGraph` (controllers/garbagecollector.py implements it).
"""

from __future__ import annotations

import json
from typing import Protocol

from pytest_k8sdr.sim.apimachinery.clock import now_rfc3339
from pytest_k8sdr.sim.apimachinery.errors import ApiError, conflict
from pytest_k8sdr.sim.apimachinery.types import JSON, ResourceType
from pytest_k8sdr.sim.apiserver.registry.strategy import cause
from pytest_k8sdr.sim.apiserver.storage import Entry

__all__ = [
    "OwnerGraph",
    "check_preconditions",
    "check_propagation_policy",
    "terminating_namespace",
]

PROPAGATION_POLICIES = (None, "", "Orphan", "Background", "Foreground")


class OwnerGraph(Protocol):
    """What the store asks of the ownership garbage collector (kube-controller-manager's)."""

    def has_dependents(self, uid: str) -> bool:
        """Whether anything names `uid` in its ownerReferences."""

    def orphan_dependents(self, uid: str) -> None:
        """Drop `uid` from its dependents' ownerReferences (propagationPolicy Orphan)."""

    def created(self, plural: str, namespace: str, name: str, obj: JSON) -> None:
        """An object was created (its owners may all be absent)."""

    def removed(self, obj: JSON) -> None:
        """An object is gone (its dependents and foreground owners may be due)."""

    def deleting_in_foreground(self, uid: str) -> None:
        """The object `uid` carries the foregroundDeletion finalizer now."""


def check_preconditions(
    rtype: ResourceType, name: str, meta: JSON, preconditions: JSON | None
) -> None:
    """409 Conflict when the uid or resourceVersion precondition does not hold."""
    if not preconditions:
        return
    if preconditions.get("uid") and preconditions["uid"] != meta.get("uid"):
        raise conflict(
            rtype.plural,
            name,
            f"Precondition failed: UID in precondition: {preconditions['uid']}, "
            f"UID in object meta: {meta.get('uid')}",
            rtype.group,
        )
    want = preconditions.get("resourceVersion")
    if want and str(want) != meta.get("resourceVersion"):
        raise conflict(
            rtype.plural,
            name,
            f"Precondition failed: ResourceVersion in precondition: {want}, "
            f"ResourceVersion in object meta: {meta.get('resourceVersion')}",
            rtype.group,
        )


def check_propagation_policy(policy: str | None) -> None:
    """422 for a propagationPolicy upstream does not know."""
    if policy in PROPAGATION_POLICIES:
        return
    raise ApiError(
        422,
        "Invalid",
        f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: '
        f'Unsupported value: "{policy}": supported values: "Foreground", '
        '"Background", "Orphan", "nil"',
        details={
            "kind": "DeleteOptions",
            "causes": [
                cause(
                    "propagationPolicy", f'Unsupported value: "{policy}"', "FieldValueNotSupported"
                )
            ],
        },
    )


def terminating_namespace(old: Entry) -> JSON:
    """The namespace marked Terminating (pkg/registry/core/namespace/storage/storage.go).

    The namespace controller empties it and then finalizes it.
    """
    new: JSON = json.loads(old.raw)
    new["metadata"]["deletionTimestamp"] = now_rfc3339()
    new["metadata"]["deletionGracePeriodSeconds"] = 0
    new["status"] = {"phase": "Terminating"}
    new.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    return new
