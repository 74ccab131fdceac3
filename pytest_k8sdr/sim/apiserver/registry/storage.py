"""The storage.k8s.io group: StorageClass, CSIDriver, CSINode, VolumeAttachment.

pkg/registry/storage and pkg/apis/storage/{v1/defaults.go,validation}: stored, defaulted and
validated. No controller here acts on them (provisioning is the PV controller's).
"""

from __future__ import annotations

import json
from typing import ClassVar

from pytest_k8sdr.sim.apimachinery.types import JSON, ResourceType
from pytest_k8sdr.sim.apiserver.registry.strategy import (
    Cause,
    ResetStatus,
    Resource,
    Strategy,
    cause,
    forbidden,
    immutable,
    required,
    unsupported,
)

__all__ = ["RESOURCES"]

_GROUP = "storage.k8s.io"


class StorageClassStrategy(Strategy):
    """SetDefaults_StorageClass; ValidateStorageClass{,Update}."""

    track_generation: ClassVar[bool] = False

    def default(self, obj: JSON) -> None:
        """Reclaim policy Delete, binding mode Immediate."""
        obj.setdefault("reclaimPolicy", "Delete")
        obj.setdefault("volumeBindingMode", "Immediate")

    def validate(self, obj: JSON, old: JSON | None) -> list[Cause]:
        """A provisioner is required; policies from their sets; provisioner, parameters fixed."""
        causes: list[Cause] = []
        if not obj.get("provisioner"):
            causes.append(required("provisioner"))
        if obj.get("reclaimPolicy") not in ("Delete", "Retain"):
            causes.append(
                unsupported("reclaimPolicy", obj.get("reclaimPolicy"), ("Delete", "Retain"))
            )
        modes = ("Immediate", "WaitForFirstConsumer")
        if obj.get("volumeBindingMode") not in modes:
            causes.append(unsupported("volumeBindingMode", obj.get("volumeBindingMode"), modes))
        if old is not None:
            for key in ("parameters", "provisioner", "reclaimPolicy"):
                if obj.get(key) != old.get(key):
                    causes.append(forbidden(key, f"updates to {key} are forbidden."))
            if obj.get("volumeBindingMode") != old.get("volumeBindingMode"):
                causes.append(immutable("volumeBindingMode", obj.get("volumeBindingMode")))
        return causes


class CSIDriverStrategy(Strategy):
    """SetDefaults_CSIDriver; the spec's attach and mount behaviour fixed after create."""

    track_generation: ClassVar[bool] = False

    def default(self, obj: JSON) -> None:
        """attachRequired, podInfoOnMount, storageCapacity, fsGroupPolicy, modes."""
        spec = obj.setdefault("spec", {})
        spec.setdefault("attachRequired", True)
        spec.setdefault("podInfoOnMount", False)
        spec.setdefault("storageCapacity", False)
        spec.setdefault("fsGroupPolicy", "ReadWriteOnceWithFSType")
        spec.setdefault("requiresRepublish", False)
        spec.setdefault("volumeLifecycleModes", ["Persistent"])
        spec.setdefault("seLinuxMount", False)

    def validate(self, obj: JSON, old: JSON | None) -> list[Cause]:
        """The attach and mount behaviour is immutable (ValidateCSIDriverUpdate)."""
        if old is None:
            return []
        spec, was = obj.get("spec") or {}, old.get("spec") or {}
        return [
            immutable(f"spec.{key}", spec.get(key))
            for key in ("attachRequired", "fsGroupPolicy", "podInfoOnMount")
            if spec.get(key) != was.get(key)
        ]


class CSINodeStrategy(Strategy):
    """CSINodes: spec.drivers required (an empty list is fine), each with name and nodeID."""

    track_generation: ClassVar[bool] = False

    def validate(self, obj: JSON, old: JSON | None) -> list[Cause]:
        """Every driver names itself and the node."""
        causes: list[Cause] = []
        drivers = (obj.get("spec") or {}).get("drivers")
        if drivers is None:
            causes.append(required("spec.drivers"))
        for n, driver in enumerate(drivers or []):
            for key in ("name", "nodeID"):
                if not (driver or {}).get(key):
                    causes.append(required(f"spec.drivers[{n}].{key}"))
        return causes


class VolumeAttachmentStrategy(ResetStatus):
    """ValidateVolumeAttachment: attacher, nodeName, exactly one source; the spec immutable."""

    track_generation: ClassVar[bool] = False
    empty_status: ClassVar[JSON] = {"attached": False}

    def validate(self, obj: JSON, old: JSON | None) -> list[Cause]:
        """Attacher, nodeName and one source (a PV name or an inline spec) are required."""
        spec = obj.get("spec") or {}
        causes: list[Cause] = []
        if not spec.get("attacher"):
            causes.append(required("spec.attacher"))
        if not spec.get("nodeName"):
            causes.append(required("spec.nodeName"))
        source = spec.get("source") or {}
        picked = [k for k in ("persistentVolumeName", "inlineVolumeSpec") if source.get(k)]
        if len(picked) != 1:
            causes.append(
                forbidden(
                    "spec.source",
                    "must specify exactly one of inlineVolumeSpec and persistentVolumeName",
                )
            )
        if old is not None and spec != (old.get("spec") or {}):
            causes.append(cause("spec", f"Invalid value: {json.dumps(spec)}: field is immutable"))
        return causes


RESOURCES = (
    Resource(
        ResourceType(_GROUP, "v1", "storageclasses", "StorageClass", False, ("sc",)),
        StorageClassStrategy,
    ),
    Resource(ResourceType(_GROUP, "v1", "csidrivers", "CSIDriver", False), CSIDriverStrategy),
    Resource(ResourceType(_GROUP, "v1", "csinodes", "CSINode", False), CSINodeStrategy),
    Resource(
        ResourceType(
            _GROUP, "v1", "volumeattachments", "VolumeAttachment", False, (), frozenset({"status"})
        ),
        VolumeAttachmentStrategy,
    ),
)
