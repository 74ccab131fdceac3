"""The volume provisioner of a kind cluster: rancher's local-path-provisioner, and network storage.

kind installs local-path-provisioner (in namespace local-path-storage) with the default
StorageClass `standard`: is-default-class, provisioner `rancher.io/local-path`,
volumeBindingMode WaitForFirstConsumer, reclaimPolicy Delete. Its volumes are directories on
one node: hostPath `/var/local-path-provisioner/pvc-<uid>_<namespace>_<claim>` with required
node affinity `kubernetes.io/hostname In [<node>]`, the node the claim's first consumer was
scheduled to (annotation `volume.kubernetes.io/selected-node`). Such a volume lives and dies
with its node: the central fact of local storage in a node loss.

The simulator adds class `network` (provisioner `sim.k8sdr.io/network`, Immediate binding,
reclaimPolicy Delete) standing for network storage (a cloud disk, NFS, Ceph): its volumes have
no node affinity, so a pod using one can run on any node. Attach/detach is not modelled (no
VolumeAttachment, no Multi-Attach wait after a node loss).

Both classes are created when the provisioner starts, unless they exist. Volumes are named
`pvc-<claim uid>` and pre-bound to their claim (`claimRef`); the PV controller binds them.
Events on the claim: `Provisioning`, `ProvisioningSucceeded` (external-provisioner's words).
"""

from __future__ import annotations

import asyncio

from pytest_k8sdr.sim.apimachinery.errors import ApiError
from pytest_k8sdr.sim.apimachinery.meta import key_of, meta
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.apiserver.admission.defaultstorageclass import DEFAULT_CLASS_ANNOTATION
from pytest_k8sdr.sim.controllers.controller import Controller
from pytest_k8sdr.sim.controllers.volumeutil import (
    ANN_PROVISIONED_BY,
    ANN_SELECTED_NODE,
    ANN_STORAGE_PROVISIONER,
    WAIT_FOR_FIRST_CONSUMER,
    delays_binding,
)
from pytest_k8sdr.sim.controllers.workqueue import WorkQueue

__all__ = ["LOCAL_PATH", "NETWORK", "STORAGE_CLASSES", "LocalPathProvisioner"]

NAME = "local-path-provisioner"
LOCAL_PATH = "rancher.io/local-path"
NETWORK = "sim.k8sdr.io/network"
HOSTNAME = "kubernetes.io/hostname"

STORAGE_CLASSES: tuple[JSON, ...] = (
    {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": "standard", "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
        "provisioner": LOCAL_PATH,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": WAIT_FOR_FIRST_CONSUMER,
    },
    {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": "network"},
        "provisioner": NETWORK,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    },
)


class LocalPathProvisioner(Controller):
    """Provisions the volumes of claims whose class names `rancher.io/local-path` or network."""

    name = NAME

    def start(self) -> list[asyncio.Task[None]]:
        """Install the storage classes, then follow claims."""
        for storage_class in STORAGE_CLASSES:
            try:
                self.store.create("storageclasses", None, dict(storage_class))
            except ApiError as exc:
                if exc.code != 409:
                    raise
        self.claims = self.informers.get("persistentvolumeclaims")
        self.classes = self.informers.get("storageclasses")
        self.queue: WorkQueue[tuple[str, str]] = WorkQueue(NAME, self._sync)
        self.watch(
            self.claims,
            lambda t, o, n: self.queue.add(key_of(n or o or {})) if n is not None else None,
        )
        return [self._spawn(self.queue.run(), "queue")]

    def _sync(self, key: tuple[str, str]) -> None:
        claim = self.claims.get(*key)
        if claim is None or meta(claim).get("deletionTimestamp"):
            return
        spec = claim.get("spec") or {}
        annotations = meta(claim).get("annotations") or {}
        provisioner = annotations.get(ANN_STORAGE_PROVISIONER)
        if spec.get("volumeName") or provisioner not in (LOCAL_PATH, NETWORK):
            return
        storage_class = self.classes.get(None, str(spec.get("storageClassName") or ""))
        if storage_class is None or storage_class.get("provisioner") != provisioner:
            return
        node = annotations.get(ANN_SELECTED_NODE)
        if provisioner == LOCAL_PATH and not node:
            return  # local-path needs a node: it provisions only for a scheduled consumer
        if delays_binding(storage_class) and not node:
            return
        ns, name = key
        uid = str(meta(claim).get("uid"))
        volume_name = f"pvc-{uid}"
        self.recorder.record(
            claim,
            "PersistentVolumeClaim",
            "Normal",
            "Provisioning",
            f'External provisioner is provisioning volume for claim "{ns}/{name}"',
            f"{provisioner}_{NAME}",
        )
        volume: JSON = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": volume_name,
                "annotations": {ANN_PROVISIONED_BY: provisioner},
            },
            "spec": {
                "capacity": {
                    "storage": ((spec.get("resources") or {}).get("requests") or {}).get(
                        "storage", "1Gi"
                    )
                },
                "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
                "persistentVolumeReclaimPolicy": storage_class.get("reclaimPolicy") or "Delete",
                "storageClassName": meta(storage_class)["name"],
                "volumeMode": spec.get("volumeMode") or "Filesystem",
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "namespace": ns,
                    "name": name,
                    "uid": uid,
                    "resourceVersion": meta(claim).get("resourceVersion"),
                },
            },
        }
        if provisioner == LOCAL_PATH:
            volume["metadata"]["annotations"]["local.path.provisioner/selected-node"] = node
            volume["spec"]["hostPath"] = {
                "path": f"/var/local-path-provisioner/{volume_name}_{ns}_{name}",
                "type": "DirectoryOrCreate",
            }
            volume["spec"]["nodeAffinity"] = {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": HOSTNAME, "operator": "In", "values": [node]}
                            ]
                        }
                    ]
                }
            }
        else:
            volume["spec"]["csi"] = {"driver": NETWORK, "volumeHandle": volume_name}
        try:
            self.store.create("persistentvolumes", None, volume)
        except ApiError as exc:
            if exc.code != 409:
                raise
            return  # made already
        self.recorder.record(
            claim,
            "PersistentVolumeClaim",
            "Normal",
            "ProvisioningSucceeded",
            f"Successfully provisioned volume {volume_name}",
            f"{provisioner}_{NAME}",
        )
