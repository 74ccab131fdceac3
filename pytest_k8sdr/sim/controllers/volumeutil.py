"""What the PV controller, the provisioner and the scheduler share about volumes.

The annotations of pkg/controller/volume/persistentvolume/util and pkg/volume/util, and the
matching of a volume's node affinity (pkg/volume/util CheckNodeAffinity) and of a volume to a
claim (pkg/controller/volume/persistentvolume/util FindMatchingVolume, in short).
"""

from __future__ import annotations

from collections.abc import Iterable

from pytest_k8sdr.sim.apimachinery.quantity import parse_quantity
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.controllers.nodeaffinity import node_selector_term_matches

__all__ = [
    "ANN_BIND_COMPLETED",
    "ANN_BOUND_BY_CONTROLLER",
    "ANN_PROVISIONED_BY",
    "ANN_SELECTED_NODE",
    "ANN_STORAGE_PROVISIONER",
    "ANN_STORAGE_PROVISIONER_BETA",
    "WAIT_FOR_FIRST_CONSUMER",
    "claim_names",
    "claim_request",
    "delays_binding",
    "volume_fits_claim",
    "volume_fits_node",
]

ANN_BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
ANN_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_STORAGE_PROVISIONER_BETA = "volume.beta.kubernetes.io/storage-provisioner"
WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"


def claim_names(pod: JSON) -> list[str]:
    """The claims a pod's volumes name (persistentVolumeClaim.claimName), in order."""
    names = []
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        if claim:
            names.append(str(claim))
    return names


def claim_request(claim: JSON) -> float:
    """The storage a claim requests, in bytes."""
    requests = ((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}
    return parse_quantity(requests.get("storage", 0))


def delays_binding(storage_class: JSON | None) -> bool:
    """Whether claims of the class wait for their first consumer (volumeBindingMode)."""
    return (
        bool(storage_class)
        and (storage_class or {}).get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER
    )


def volume_fits_node(volume: JSON, node: JSON) -> bool:
    """CheckNodeAffinity: the volume's required node affinity matches the node (none: any)."""
    required = ((volume.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {}
    terms: Iterable[JSON] = required.get("nodeSelectorTerms") or []
    terms = list(terms)
    if not terms:
        return True
    return any(node_selector_term_matches(term, node) for term in terms)


def volume_fits_claim(volume: JSON, claim: JSON) -> bool:
    """An unclaimed volume of the claim's class, mode and access modes, large enough."""
    vspec = volume.get("spec") or {}
    cspec = claim.get("spec") or {}
    if vspec.get("claimRef") or (volume.get("status") or {}).get("phase") not in (
        "Available",
        "Pending",
        None,
    ):
        return False
    if (vspec.get("storageClassName") or "") != (cspec.get("storageClassName") or ""):
        return False
    if (vspec.get("volumeMode") or "Filesystem") != (cspec.get("volumeMode") or "Filesystem"):
        return False
    if not set(cspec.get("accessModes") or []) <= set(vspec.get("accessModes") or []):
        return False
    size = parse_quantity((vspec.get("capacity") or {}).get("storage", 0))
    return size >= claim_request(claim)
