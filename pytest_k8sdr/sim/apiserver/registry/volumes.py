"""PersistentVolumes and PersistentVolumeClaims (pkg/registry/core/persistentvolume{,claim}).

Stored, defaulted and validated as upstream; binding and provisioning are the PV controller's
(`controllers`), not the registry's.
"""

from __future__ import annotations

from typing import ClassVar

from pytest_k8sdr.sim.apimachinery.quantity import parse_quantity
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.apiserver.registry.strategy import (
    Cause,
    Strategy,
    cause,
    immutable,
    required,
    unsupported,
)

__all__ = ["PersistentVolumeClaimStrategy", "PersistentVolumeStrategy"]

_ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")
_VOLUME_MODES = ("Block", "Filesystem")
# The volume sources a PersistentVolumeSpec may carry (k8s.io/api core/v1 types.go).
_PV_SOURCES = frozenset(
    {
        "awsElasticBlockStore",
        "azureDisk",
        "azureFile",
        "cephfs",
        "cinder",
        "csi",
        "fc",
        "flexVolume",
        "flocker",
        "gcePersistentDisk",
        "glusterfs",
        "hostPath",
        "iscsi",
        "local",
        "nfs",
        "photonPersistentDisk",
        "portworxVolume",
        "quobyte",
        "rbd",
        "scaleIO",
        "storageos",
        "vsphereVolume",
    }
)


def _quantity_causes(path: str, value: object) -> list[Cause]:
    try:
        parse_quantity(value)
    except (TypeError, ValueError):
        return [
            cause(
                path,
                f"Invalid value: {value!r}: quantities must match the regular expression "
                "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            )
        ]
    return []


def _access_mode_causes(path: str, modes: object, missing: str) -> list[Cause]:
    if not modes:
        return [required(path, missing)]
    listed = modes if isinstance(modes, list) else [modes]
    return [unsupported(path, m, _ACCESS_MODES) for m in listed if m not in _ACCESS_MODES]


class PersistentVolumeStrategy(Strategy):
    """SetDefaults_PersistentVolume (pkg/apis/core/v1/defaults.go); ValidatePersistentVolume."""

    track_generation: ClassVar[bool] = False

    def prepare_for_create(self, obj: JSON) -> None:
        """A new volume is Pending (its status is the PV controller's)."""
        obj["status"] = {"phase": "Pending"}

    def default(self, obj: JSON) -> None:
        """Retain, Filesystem, phase Pending."""
        spec = obj.setdefault("spec", {})
        spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
        spec.setdefault("volumeMode", "Filesystem")
        status = obj.setdefault("status", {})
        if isinstance(status, dict):
            status.setdefault("phase", "Pending")

    def validate(self, obj: JSON, old: JSON | None) -> list[Cause]:
        """Access modes, capacity[storage], exactly one volume source, the reclaim policy."""
        spec = obj.get("spec") or {}
        causes = _access_mode_causes(
            "spec.accessModes", spec.get("accessModes"), "must specify at least 1 access mode"
        )
        capacity = spec.get("capacity")
        if not capacity:
            causes.append(required("spec.capacity"))
        else:
            for key, value in capacity.items():
                if key != "storage":
                    causes.append(unsupported("spec.capacity", key, ("storage",)))
                else:
                    causes += _quantity_causes("spec.capacity[storage]", value)
        sources = [k for k in spec if k in _PV_SOURCES]
        if not sources:
            causes.append(required("spec", "must specify a volume type"))
        elif len(sources) > 1:
            causes.append(
                cause(f"spec.{sources[1]}", "Forbidden: may not specify more than 1 volume type")
            )
        policy = spec.get("persistentVolumeReclaimPolicy")
        if policy not in ("Delete", "Recycle", "Retain"):
            causes.append(
                unsupported(
                    "spec.persistentVolumeReclaimPolicy", policy, ("Delete", "Recycle", "Retain")
                )
            )
        if spec.get("volumeMode") not in _VOLUME_MODES:
            causes.append(unsupported("spec.volumeMode", spec.get("volumeMode"), _VOLUME_MODES))
        if old is not None:
            old_spec = old.get("spec") or {}
            for key in sorted(_PV_SOURCES | {"volumeMode"}):
                if key in old_spec and spec.get(key) != old_spec.get(key):
                    causes.append(immutable(f"spec.{key}", spec.get(key)))
        return causes


class PersistentVolumeClaimStrategy(Strategy):
    """SetDefaults_PersistentVolumeClaim; ValidatePersistentVolumeClaim{,Update}."""

    track_generation: ClassVar[bool] = False

    def prepare_for_create(self, obj: JSON) -> None:
        """A new claim is Pending."""
        obj["status"] = {"phase": "Pending"}

    def default(self, obj: JSON) -> None:
        """Filesystem, phase Pending."""
        obj.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")
        status = obj.setdefault("status", {})
        if isinstance(status, dict):
            status.setdefault("phase", "Pending")

    def validate(self, obj: JSON, old: JSON | None) -> list[Cause]:
        """Access modes, resources.requests[storage]; the spec immutable once created.

        Upstream lets an update change resources.requests (expansion), set spec.volumeName
        once (binding) and volumeAttributesClassName (ValidatePersistentVolumeClaimUpdate).
        """
        spec = obj.get("spec") or {}
        causes = _access_mode_causes(
            "spec.accessModes", spec.get("accessModes"), "at least 1 access mode is required"
        )
        requests = (spec.get("resources") or {}).get("requests") or {}
        if "storage" not in requests:
            causes.append(required("spec.resources[storage]"))
        else:
            causes += _quantity_causes("spec.resources[storage]", requests["storage"])
        if spec.get("volumeMode") not in _VOLUME_MODES:
            causes.append(unsupported("spec.volumeMode", spec.get("volumeMode"), _VOLUME_MODES))
        if old is not None:
            old_spec = old.get("spec") or {}
            mutable = {"resources", "volumeAttributesClassName"}
            if not old_spec.get("volumeName"):
                mutable.add("volumeName")
            if not old_spec.get("storageClassName"):
                mutable.add("storageClassName")
            kept = {k: v for k, v in spec.items() if k not in mutable}
            was = {k: v for k, v in old_spec.items() if k not in mutable}
            if kept != was:
                causes.append(
                    cause(
                        "spec",
                        "Forbidden: spec is immutable after creation except resources.requests "
                        "and volumeAttributesClassName for bound claims",
                        "FieldValueForbidden",
                    )
                )
        return causes
