"""A StatefulSet's claims (pkg/controller/statefulset/stateful_pod_control.go and utils).

Each `volumeClaimTemplates` entry gives every ordinal a claim `<template>-<set>-<ordinal>`
(labels: the template's and the set's selector matchLabels), created before the pod
(createPersistentVolumeClaims, event `SuccessfulCreate` "create Claim C Pod P in
StatefulSet S success"), and the pod gets a volume of the template's name using it
(updateStorage). Claims outlive their pods: a recreated pod finds its claim, and its volume,
again. persistentVolumeClaimRetentionPolicy `whenDeleted: Delete` makes the set the claims'
owner, so deleting the set deletes them; `whenScaled` is not modelled (claims are retained).
"""

from __future__ import annotations

import copy

from pytest_k8sdr.sim.apimachinery.errors import ApiError
from pytest_k8sdr.sim.apimachinery.meta import key_of, meta
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.apiserver.registry.store import Store

__all__ = ["add_claim_volumes", "claim_name", "create_claims"]


def claim_name(template: JSON, set_name: str, ordinal: int) -> str:
    """getPersistentVolumeClaimName: <template>-<set>-<ordinal>."""
    return f"{meta(template).get('name')}-{set_name}-{ordinal}"


def _templates(sts: JSON) -> list[JSON]:
    return [
        t for t in (sts.get("spec") or {}).get("volumeClaimTemplates") or [] if meta(t).get("name")
    ]


def add_claim_volumes(pod_spec: JSON, sts: JSON, ordinal: int) -> None:
    """updateStorage: a volume per claim template, replacing one of the same name."""
    templates = _templates(sts)
    if not templates:
        return
    names = {meta(t)["name"] for t in templates}
    volumes = [v for v in pod_spec.get("volumes") or [] if v.get("name") not in names]
    set_name = meta(sts)["name"]
    for t in templates:
        volumes.append(
            {
                "name": meta(t)["name"],
                "persistentVolumeClaim": {"claimName": claim_name(t, set_name, ordinal)},
            }
        )
    pod_spec["volumes"] = volumes


def create_claims(store: Store, sts: JSON, ordinal: int, pod_name: str) -> list[str]:
    """Create the pod's missing claims; the names of those created (for the events)."""
    ns, set_name = key_of(sts)
    spec = sts.get("spec") or {}
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    policy = spec.get("persistentVolumeClaimRetentionPolicy") or {}
    created = []
    for template in _templates(sts):
        name = claim_name(template, set_name, ordinal)
        try:
            store.get("persistentvolumeclaims", ns, name)
            continue
        except ApiError as exc:
            if exc.code != 404:
                raise
        claim = copy.deepcopy(template)
        claim_meta = claim.setdefault("metadata", {})
        claim_meta["name"] = name
        claim_meta["namespace"] = ns
        claim_meta["labels"] = {**(claim_meta.get("labels") or {}), **selector}
        for key in ("uid", "resourceVersion", "creationTimestamp"):
            claim_meta.pop(key, None)
        claim.pop("status", None)
        claim["apiVersion"], claim["kind"] = "v1", "PersistentVolumeClaim"
        if policy.get("whenDeleted") == "Delete":
            claim_meta["ownerReferences"] = [
                {
                    "apiVersion": "apps/v1",
                    "kind": "StatefulSet",
                    "name": set_name,
                    "uid": meta(sts)["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ]
        try:
            store.create("persistentvolumeclaims", ns, claim)
        except ApiError as exc:
            if exc.code != 409:
                raise
            continue
        created.append(name)
    return created
