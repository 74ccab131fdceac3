"""DefaultStorageClass admission (plugin/pkg/admission/storage/storageclass/setdefault).

A claim created without `spec.storageClassName` gets the default StorageClass (annotation
`storageclass.kubernetes.io/is-default-class: "true"`; the newest one when several are,
pkg/volume/util GetDefaultClass). An explicit `""` means "no class" and is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.apiserver.admission import MutatingPlugin

__all__ = ["DEFAULT_CLASS_ANNOTATION", "NAME", "default_class", "plugin"]

NAME = "DefaultStorageClass"
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"


def default_class(classes: Iterable[JSON]) -> str | None:
    """The name of the default StorageClass, None when there is none."""
    defaults = [
        c
        for c in classes
        if ((c.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION)
        == "true"
    ]
    if not defaults:
        return None
    newest = max(
        defaults,
        key=lambda c: (
            str((c.get("metadata") or {}).get("creationTimestamp") or ""),
            str((c.get("metadata") or {}).get("name") or ""),
        ),
    )
    return str(newest["metadata"]["name"])


def plugin(classes: Callable[[], Iterable[JSON]]) -> MutatingPlugin:
    """The admission plugin for persistentvolumeclaims; `classes()` lists the StorageClasses."""

    def admit(operation: str, new: JSON, old: JSON | None) -> None:
        if operation != "CREATE":
            return
        spec = new.setdefault("spec", {})
        if spec.get("storageClassName") is not None:
            return
        name = default_class(classes())
        if name is not None:
            spec["storageClassName"] = name

    return admit
