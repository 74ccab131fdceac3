"""The PV controller's binder (pkg/controller/volume/persistentvolume/pv_controller.go).

syncClaim: an unbound claim of a WaitForFirstConsumer class waits (event
`WaitForFirstConsumer` "waiting for first consumer to be created before binding") until the
scheduler annotates it `volume.kubernetes.io/selected-node`; then, or at once for Immediate
classes, it is bound to a volume pre-bound to it (`claimRef`, a provisioned volume) or to the
smallest matching Available volume (of a WaitForFirstConsumer class: one whose node affinity
admits the selected node); else, when the class has a provisioner, the claim is annotated
`volume.kubernetes.io/storage-provisioner` for it (event `ExternalProvisioning`). Binding sets
the volume's `claimRef` and phase Bound, the claim's `spec.volumeName`, its annotations
`pv.kubernetes.io/bind-completed` and `pv.kubernetes.io/bound-by-controller`, and its phase
Bound with the volume's capacity and access modes. A bound claim whose volume is gone is Lost
(event `ClaimLost`).

syncVolume: a volume without `claimRef` is Available; one whose claim is gone is Released and,
with reclaim policy Delete, deleted (what the provisioner's deleter does upstream); Retain
keeps it Released.

Not modelled: claim label selectors, dataSource, volume expansion, Recycle, the in-tree
deleters and their failures.
"""

from __future__ import annotations

import asyncio

from pytest_k8sdr.sim.apimachinery.errors import ApiError
from pytest_k8sdr.sim.apimachinery.meta import key_of, meta
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.controllers.controller import Controller
from pytest_k8sdr.sim.controllers.volumeutil import (
    ANN_BIND_COMPLETED,
    ANN_BOUND_BY_CONTROLLER,
    ANN_SELECTED_NODE,
    ANN_STORAGE_PROVISIONER,
    ANN_STORAGE_PROVISIONER_BETA,
    claim_request,
    delays_binding,
    volume_fits_claim,
    volume_fits_node,
)
from pytest_k8sdr.sim.controllers.workqueue import WorkQueue

__all__ = ["PersistentVolumeController"]

NAME = "persistentvolume-binder"
COMPONENT = "persistentvolume-controller"

# ("claim", namespace, name) or ("volume", "", name)
_Key = tuple[str, str, str]


class PersistentVolumeController(Controller):
    """Binds claims to volumes and releases volumes whose claims are gone."""

    name = NAME

    def start(self) -> list[asyncio.Task[None]]:
        """Follow claims, volumes, classes and nodes."""
        self.claims = self.informers.get("persistentvolumeclaims")
        self.volumes = self.informers.get("persistentvolumes")
        self.classes = self.informers.get("storageclasses")
        self.nodes = self.informers.get("nodes")
        self.queue: WorkQueue[_Key] = WorkQueue(NAME, self._sync)
        self._waiting_said: set[str] = set()

        def on_claim(etype: str, old: JSON | None, new: JSON | None) -> None:
            obj = new or old or {}
            ns, name = key_of(obj)
            self.queue.add(("claim", ns or "", name))
            volume = (obj.get("spec") or {}).get("volumeName")
            if new is None and volume:
                self.queue.add(("volume", "", str(volume)))
            if new is None:
                # A deleted claim releases the volumes that point at it.
                for pv in self.volumes.list():
                    ref = (pv.get("spec") or {}).get("claimRef") or {}
                    if (ref.get("namespace"), ref.get("name")) == (ns, name):
                        self.queue.add(("volume", "", meta(pv)["name"]))

        def on_volume(etype: str, old: JSON | None, new: JSON | None) -> None:
            obj = new or old or {}
            self.queue.add(("volume", "", meta(obj)["name"]))
            ref = (obj.get("spec") or {}).get("claimRef") or {}
            if ref.get("name"):
                self.queue.add(("claim", str(ref.get("namespace") or ""), str(ref["name"])))
            elif new is not None:
                # A new unclaimed volume may fit a waiting claim.
                for claim in self.claims.list():
                    if not (claim.get("spec") or {}).get("volumeName"):
                        self.queue.add(("claim", *key_of(claim)))

        self.watch(self.claims, on_claim)
        self.watch(self.volumes, on_volume)
        return [self._spawn(self.queue.run(), "queue")]

    def _event(self, obj: JSON, kind: str, etype: str, reason: str, message: str) -> None:
        self.recorder.record(obj, kind, etype, reason, message, COMPONENT)

    def _sync(self, key: _Key) -> None:
        what, ns, name = key
        if what == "claim":
            claim = self.claims.get(ns, name)
            if claim is not None and not meta(claim).get("deletionTimestamp"):
                self._sync_claim(claim)
        else:
            volume = self.volumes.get(None, name)
            if volume is not None and not meta(volume).get("deletionTimestamp"):
                self._sync_volume(volume)

    # claims

    def _sync_claim(self, claim: JSON) -> None:
        spec = claim.get("spec") or {}
        volume_name = spec.get("volumeName")
        if volume_name:
            volume = self.volumes.get(None, str(volume_name))
            if volume is None:
                if (claim.get("status") or {}).get("phase") == "Bound":
                    self._claim_status(claim, {"phase": "Lost"})
                    self._event(
                        claim,
                        "PersistentVolumeClaim",
                        "Warning",
                        "ClaimLost",
                        "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
                    )
                return
            ref = (volume.get("spec") or {}).get("claimRef") or {}
            if ref.get("uid") in (None, "", meta(claim).get("uid")):
                self._bind(claim, volume, by_controller=False)
            return
        class_name = str(spec.get("storageClassName") or "")
        storage_class = self.classes.get(None, class_name) if class_name else None
        annotations = meta(claim).get("annotations") or {}
        selected = annotations.get(ANN_SELECTED_NODE)
        if delays_binding(storage_class) and not selected:
            uid = str(meta(claim).get("uid"))
            if uid not in self._waiting_said:
                self._waiting_said.add(uid)
                self._event(
                    claim,
                    "PersistentVolumeClaim",
                    "Normal",
                    "WaitForFirstConsumer",
                    "waiting for first consumer to be created before binding",
                )
            return
        volume = self._find_volume(claim, storage_class, selected)
        if volume is not None:
            self._bind(claim, volume, by_controller=True)
            return
        provisioner = (storage_class or {}).get("provisioner")
        if not provisioner:
            self._event(
                claim,
                "PersistentVolumeClaim",
                "Normal",
                "FailedBinding",
                "no persistent volumes available for this claim and no storage class is set",
            )
            return
        if annotations.get(ANN_STORAGE_PROVISIONER) == provisioner:
            return
        self._annotate(
            claim,
            {
                ANN_STORAGE_PROVISIONER: str(provisioner),
                ANN_STORAGE_PROVISIONER_BETA: str(provisioner),
            },
        )
        self._event(
            claim,
            "PersistentVolumeClaim",
            "Normal",
            "ExternalProvisioning",
            f"Waiting for a volume to be created either by the external provisioner "
            f"'{provisioner}' or manually by the system administrator. If volume creation is "
            "delayed, please verify that the provisioner is running and correctly registered.",
        )

    def _find_volume(
        self, claim: JSON, storage_class: JSON | None, selected: str | None
    ) -> JSON | None:
        uid = meta(claim).get("uid")
        ns, name = key_of(claim)
        node = self.nodes.get(None, selected) if selected else None
        best: JSON | None = None
        for volume in self.volumes.list():
            ref = (volume.get("spec") or {}).get("claimRef") or {}
            if ref.get("name"):
                if (ref.get("namespace"), ref.get("name")) == (ns, name) and ref.get("uid") in (
                    None,
                    "",
                    uid,
                ):
                    return volume  # pre-bound to this claim (a provisioned volume)
                continue
            if not volume_fits_claim(volume, claim):
                continue
            if delays_binding(storage_class) and (
                node is None or not volume_fits_node(volume, node)
            ):
                continue
            if best is None or _size(volume) < _size(best):
                best = volume
        return best

    def _bind(self, claim: JSON, volume: JSON, *, by_controller: bool) -> None:
        """bind(): the volume's claimRef and phase first, then the claim's, as upstream."""
        ns, name = key_of(claim)
        cmeta = meta(claim)
        vspec = volume.get("spec") or {}
        ref = vspec.get("claimRef") or {}
        vol_name = meta(volume)["name"]
        if ref.get("uid") != cmeta.get("uid"):
            live = self.store.get("persistentvolumes", None, vol_name)
            live["spec"]["claimRef"] = {
                "kind": "PersistentVolumeClaim",
                "namespace": ns,
                "name": name,
                "uid": cmeta.get("uid"),
                "apiVersion": "v1",
                "resourceVersion": cmeta.get("resourceVersion"),
            }
            if by_controller:
                live["metadata"].setdefault("annotations", {})[ANN_BOUND_BY_CONTROLLER] = "yes"
            volume = self.store.update("persistentvolumes", None, vol_name, live)
        if (volume.get("status") or {}).get("phase") != "Bound":
            live = self.store.get("persistentvolumes", None, vol_name)
            live["status"] = {**(live.get("status") or {}), "phase": "Bound"}
            self.store.update("persistentvolumes", None, vol_name, live, subresource="status")
        annotations = cmeta.get("annotations") or {}
        cspec = claim.get("spec") or {}
        if cspec.get("volumeName") != vol_name or annotations.get(ANN_BIND_COMPLETED) != "yes":
            live = self.store.get("persistentvolumeclaims", ns, name)
            live["spec"]["volumeName"] = vol_name
            ann = live["metadata"].setdefault("annotations", {})
            ann[ANN_BIND_COMPLETED] = "yes"
            if by_controller or cspec.get("volumeName") != vol_name:
                ann[ANN_BOUND_BY_CONTROLLER] = "yes"
            claim = self.store.update("persistentvolumeclaims", ns, name, live)
        vspec = volume.get("spec") or {}
        self._claim_status(
            claim,
            {
                "phase": "Bound",
                "accessModes": list(vspec.get("accessModes") or []),
                "capacity": dict(vspec.get("capacity") or {}),
            },
        )

    def _claim_status(self, claim: JSON, status: JSON) -> None:
        old = claim.get("status") or {}
        if all(old.get(k) == v for k, v in status.items()):
            return
        ns, name = key_of(claim)
        live = self.store.get("persistentvolumeclaims", ns, name)
        live["status"] = {**(live.get("status") or {}), **status}
        self.store.update("persistentvolumeclaims", ns, name, live, subresource="status")

    def _annotate(self, claim: JSON, annotations: dict[str, str]) -> None:
        ns, name = key_of(claim)
        live = self.store.get("persistentvolumeclaims", ns, name)
        live["metadata"].setdefault("annotations", {}).update(annotations)
        self.store.update("persistentvolumeclaims", ns, name, live)

    # volumes

    def _sync_volume(self, volume: JSON) -> None:
        name = meta(volume)["name"]
        ref = (volume.get("spec") or {}).get("claimRef") or {}
        phase = (volume.get("status") or {}).get("phase")
        if not ref.get("name"):
            self._volume_phase(volume, "Available")
            return
        claim = self.claims.get(str(ref.get("namespace") or ""), str(ref["name"]))
        if claim is not None and ref.get("uid") in (None, "", meta(claim).get("uid")):
            if (claim.get("spec") or {}).get("volumeName") == name:
                self._volume_phase(volume, "Bound")
            elif phase not in ("Available", "Bound"):
                self._volume_phase(volume, "Available")  # pre-bound, the claim binds next
            return
        if not ref.get("uid"):
            self._volume_phase(volume, "Available")  # pre-bound to a claim not made yet
            return
        if phase != "Released":
            self._volume_phase(volume, "Released")
        if (volume.get("spec") or {}).get("persistentVolumeReclaimPolicy") == "Delete":
            try:
                self.store.delete("persistentvolumes", None, name)
            except ApiError as exc:
                if exc.code != 404:
                    raise

    def _volume_phase(self, volume: JSON, phase: str) -> None:
        if (volume.get("status") or {}).get("phase") == phase:
            return
        name = meta(volume)["name"]
        try:
            live = self.store.get("persistentvolumes", None, name)
        except ApiError as exc:
            if exc.code == 404:
                return
            raise
        live["status"] = {**(live.get("status") or {}), "phase": phase}
        self.store.update("persistentvolumes", None, name, live, subresource="status")


def _size(volume: JSON) -> float:
    return claim_request(
        {"spec": {"resources": {"requests": (volume.get("spec") or {}).get("capacity") or {}}}}
    )
