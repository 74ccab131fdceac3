"""Object metadata helpers (apimachinery/pkg/apis/meta/v1, pkg/controller/controller_utils.go)."""

from __future__ import annotations

from collections.abc import Iterable

from pytest_k8sdr.sim.apimachinery.types import JSON

__all__ = [
    "Key",
    "controller_ref",
    "get_condition",
    "is_terminating",
    "key_of",
    "meta",
    "owner_reference",
]

Key = tuple[str, str]  # (namespace or "", name)


def meta(obj: JSON) -> JSON:
    """The object's metadata (empty dict when missing)."""
    m: JSON = obj.get("metadata") or {}
    return m


def key_of(obj: JSON) -> Key:
    """(namespace, name) of an object."""
    m = meta(obj)
    return (m.get("namespace") or "", m.get("name") or "")


def is_terminating(obj: JSON) -> bool:
    """The object has a deletionTimestamp."""
    return bool(meta(obj).get("deletionTimestamp"))


def get_condition(conditions: Iterable[JSON] | None, ctype: str) -> JSON | None:
    """The condition of that type, or None."""
    for cond in conditions or ():
        if cond.get("type") == ctype:
            return cond
    return None


def controller_ref(obj: JSON) -> JSON | None:
    """The ownerReference with controller=true, or None."""
    for ref in meta(obj).get("ownerReferences") or ():
        if ref.get("controller"):
            return dict(ref)
    return None


def owner_reference(owner: JSON, api_version: str, kind: str) -> JSON:
    """A controller ownerReference to `owner`."""
    m = meta(owner)
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": m["name"],
        "uid": m["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
