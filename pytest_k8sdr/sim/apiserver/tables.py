"""`meta.k8s.io/v1` Table renderings, which `kubectl get` asks the server for.

Columns follow pkg/printers/internalversion/printers.go for the common types; other types
get NAME and AGE.
"""

from __future__ import annotations

import time
from typing import Any

from pytest_k8sdr.sim.apimachinery.clock import parse_rfc3339
from pytest_k8sdr.sim.apimachinery.types import JSON, ResourceType


def _age(ts: str | None) -> str:
    then = parse_rfc3339(ts)
    if then is None:
        return "<unknown>"
    secs = max(0, int(time.time() - then))
    if secs < 120:
        return f"{secs}s"
    if secs < 3600 * 3:
        return f"{secs // 60}m"
    if secs < 86400 * 2:
        return f"{secs // 3600}h"
    return f"{secs // 86400}d"


def _col(name: str, kind: str = "string", priority: int = 0, fmt: str = "") -> JSON:
    return {"name": name, "type": kind, "format": fmt, "description": name, "priority": priority}


def _pod_row(pod: JSON) -> list[Any]:
    spec, status, meta = pod.get("spec") or {}, pod.get("status") or {}, pod["metadata"]
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
    reason = status.get("reason") or status.get("phase") or "Unknown"
    if meta.get("deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    return [
        meta["name"],
        f"{ready}/{len(spec.get('containers') or [])}",
        reason,
        restarts,
        _age(meta.get("creationTimestamp")),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
    ]


def _node_row(node: JSON) -> list[Any]:
    meta, spec, status = node["metadata"], node.get("spec") or {}, node.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    state = "Unknown"
    if ready is not None:
        state = {"True": "Ready", "False": "NotReady"}.get(ready.get("status", ""), "NotReady")
        if ready.get("status") == "Unknown":
            state = "NotReady"
    if spec.get("unschedulable"):
        state += ",SchedulingDisabled"
    prefix = "node-role.kubernetes.io/"
    roles = sorted(k[len(prefix) :] for k in meta.get("labels") or {} if k.startswith(prefix))
    address = next(
        (a.get("address") for a in status.get("addresses") or [] if a.get("type") == "InternalIP"),
        "<none>",
    )
    version = (status.get("nodeInfo") or {}).get("kubeletVersion", "")
    return [
        meta["name"],
        state,
        ",".join(roles) or "<none>",
        _age(meta.get("creationTimestamp")),
        version,
        address,
    ]


def _workload_row(obj: JSON) -> list[Any]:
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    want = spec.get("replicas", 0)
    return [
        meta["name"],
        f"{status.get('readyReplicas', 0)}/{want}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        _age(meta.get("creationTimestamp")),
    ]


def _service_row(svc: JSON) -> list[Any]:
    meta, spec = svc["metadata"], svc.get("spec") or {}
    ports = ",".join(
        f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}"
        f"/{p.get('protocol', 'TCP')}"
        for p in spec.get("ports") or []
    )
    return [
        meta["name"],
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP", ""),
        "<none>",
        ports or "<none>",
        _age(meta.get("creationTimestamp")),
    ]


def _namespace_row(ns: JSON) -> list[Any]:
    meta = ns["metadata"]
    phase = (ns.get("status") or {}).get("phase", "")
    return [meta["name"], phase, _age(meta.get("creationTimestamp"))]


def _replicaset_row(rs: JSON) -> list[Any]:
    meta, spec, status = rs["metadata"], rs.get("spec") or {}, rs.get("status") or {}
    return [
        meta["name"],
        spec.get("replicas", 0),
        status.get("replicas", 0),
        status.get("readyReplicas", 0),
        _age(meta.get("creationTimestamp")),
    ]


def _statefulset_row(sts: JSON) -> list[Any]:
    meta, spec, status = sts["metadata"], sts.get("spec") or {}, sts.get("status") or {}
    return [
        meta["name"],
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        _age(meta.get("creationTimestamp")),
    ]


def _daemonset_row(ds: JSON) -> list[Any]:
    meta, status = ds["metadata"], ds.get("status") or {}
    return [
        meta["name"],
        status.get("desiredNumberScheduled", 0),
        status.get("currentNumberScheduled", 0),
        status.get("numberReady", 0),
        status.get("updatedNumberScheduled", 0),
        status.get("numberAvailable", 0),
        _age(meta.get("creationTimestamp")),
    ]


_MODE_ABBREVIATIONS = (
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
)


def _access_modes(modes: list[str] | None) -> str:
    """pkg/apis/core/helper GetAccessModesAsString."""
    have = set(modes or [])
    return ",".join(short for long, short in _MODE_ABBREVIATIONS if long in have)


def _pv_row(pv: JSON) -> list[Any]:
    meta, spec, status = pv["metadata"], pv.get("spec") or {}, pv.get("status") or {}
    ref = spec.get("claimRef") or {}
    claim = f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref.get("name") else ""
    phase = "Terminating" if meta.get("deletionTimestamp") else status.get("phase", "")
    return [
        meta["name"],
        (spec.get("capacity") or {}).get("storage", ""),
        _access_modes(spec.get("accessModes")),
        spec.get("persistentVolumeReclaimPolicy", ""),
        phase,
        claim,
        spec.get("storageClassName", ""),
        spec.get("volumeAttributesClassName") or "<unset>",
        status.get("reason", ""),
        _age(meta.get("creationTimestamp")),
        spec.get("volumeMode") or "<unset>",
    ]


def _pvc_row(pvc: JSON) -> list[Any]:
    meta, spec, status = pvc["metadata"], pvc.get("spec") or {}, pvc.get("status") or {}
    phase = "Terminating" if meta.get("deletionTimestamp") else status.get("phase", "")
    storage = modes = ""
    if spec.get("volumeName"):
        modes = _access_modes(status.get("accessModes"))
        storage = (status.get("capacity") or {}).get("storage", "")
    klass = spec.get("storageClassName")
    if klass is None:
        klass = (meta.get("annotations") or {}).get("volume.beta.kubernetes.io/storage-class", "")
    return [
        meta["name"],
        phase,
        spec.get("volumeName", ""),
        storage,
        modes,
        klass,
        spec.get("volumeAttributesClassName") or "<unset>",
        _age(meta.get("creationTimestamp")),
        spec.get("volumeMode") or "<unset>",
    ]


def _storageclass_row(sc: JSON) -> list[Any]:
    meta = sc["metadata"]
    name = meta["name"]
    if (meta.get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true":
        name += " (default)"
    return [
        name,
        sc.get("provisioner", ""),
        sc.get("reclaimPolicy", "Delete"),
        sc.get("volumeBindingMode", "Immediate"),
        bool(sc.get("allowVolumeExpansion")),
        _age(meta.get("creationTimestamp")),
    ]


def _csidriver_row(driver: JSON) -> list[Any]:
    meta, spec = driver["metadata"], driver.get("spec") or {}
    audiences = [t.get("audience", "") for t in spec.get("tokenRequests") or []]
    return [
        meta["name"],
        bool(spec.get("attachRequired", True)),
        bool(spec.get("podInfoOnMount")),
        bool(spec.get("storageCapacity")),
        ",".join(audiences) or "<unset>",
        bool(spec.get("requiresRepublish")),
        ",".join(spec.get("volumeLifecycleModes") or []),
        _age(meta.get("creationTimestamp")),
    ]


def _csinode_row(node: JSON) -> list[Any]:
    meta = node["metadata"]
    drivers = (node.get("spec") or {}).get("drivers") or []
    return [meta["name"], len(drivers), _age(meta.get("creationTimestamp"))]


def _volumeattachment_row(va: JSON) -> list[Any]:
    meta, spec = va["metadata"], va.get("spec") or {}
    return [
        meta["name"],
        spec.get("attacher", ""),
        (spec.get("source") or {}).get("persistentVolumeName", ""),
        spec.get("nodeName", ""),
        bool((va.get("status") or {}).get("attached")),
        _age(meta.get("creationTimestamp")),
    ]


def _priorityclass_row(pc: JSON) -> list[Any]:
    meta = pc["metadata"]
    return [
        meta["name"],
        pc.get("value", 0),
        bool(pc.get("globalDefault")),
        _age(meta.get("creationTimestamp")),
        pc.get("preemptionPolicy", ""),
    ]


_LAYOUTS: dict[str, tuple[list[JSON], Any]] = {
    "persistentvolumes": (
        [
            _col("Name", fmt="name"),
            _col("Capacity"),
            _col("Access Modes"),
            _col("Reclaim Policy"),
            _col("Status"),
            _col("Claim"),
            _col("StorageClass"),
            _col("VolumeAttributesClass"),
            _col("Reason"),
            _col("Age"),
            _col("VolumeMode", priority=1),
        ],
        _pv_row,
    ),
    "persistentvolumeclaims": (
        [
            _col("Name", fmt="name"),
            _col("Status"),
            _col("Volume"),
            _col("Capacity"),
            _col("Access Modes"),
            _col("StorageClass"),
            _col("VolumeAttributesClass"),
            _col("Age"),
            _col("VolumeMode", priority=1),
        ],
        _pvc_row,
    ),
    "storageclasses": (
        [
            _col("Name", fmt="name"),
            _col("Provisioner"),
            _col("ReclaimPolicy"),
            _col("VolumeBindingMode"),
            _col("AllowVolumeExpansion", "boolean"),
            _col("Age"),
        ],
        _storageclass_row,
    ),
    "csidrivers": (
        [
            _col("Name", fmt="name"),
            _col("AttachRequired", "boolean"),
            _col("PodInfoOnMount", "boolean"),
            _col("StorageCapacity", "boolean"),
            _col("TokenRequests"),
            _col("RequiresRepublish", "boolean"),
            _col("Modes"),
            _col("Age"),
        ],
        _csidriver_row,
    ),
    "csinodes": (
        [_col("Name", fmt="name"), _col("Drivers", "integer"), _col("Age")],
        _csinode_row,
    ),
    "volumeattachments": (
        [
            _col("Name", fmt="name"),
            _col("Attacher"),
            _col("PV"),
            _col("Node"),
            _col("Attached", "boolean"),
            _col("Age"),
        ],
        _volumeattachment_row,
    ),
    "priorityclasses": (
        [
            _col("Name", fmt="name"),
            _col("Value", "integer"),
            _col("Global-Default", "boolean"),
            _col("Age"),
            _col("PreemptionPolicy"),
        ],
        _priorityclass_row,
    ),
    "namespaces": ([_col("Name", fmt="name"), _col("Status"), _col("Age")], _namespace_row),
    "replicasets": (
        [
            _col("Name", fmt="name"),
            _col("Desired", "integer"),
            _col("Current", "integer"),
            _col("Ready", "integer"),
            _col("Age"),
        ],
        _replicaset_row,
    ),
    "statefulsets": ([_col("Name", fmt="name"), _col("Ready"), _col("Age")], _statefulset_row),
    "daemonsets": (
        [
            _col("Name", fmt="name"),
            _col("Desired", "integer"),
            _col("Current", "integer"),
            _col("Ready", "integer"),
            _col("Up-to-date", "integer"),
            _col("Available", "integer"),
            _col("Age"),
        ],
        _daemonset_row,
    ),
    "pods": (
        [
            _col("Name", fmt="name"),
            _col("Ready"),
            _col("Status"),
            _col("Restarts", "integer"),
            _col("Age"),
            _col("IP", priority=1),
            _col("Node", priority=1),
        ],
        _pod_row,
    ),
    "nodes": (
        [
            _col("Name", fmt="name"),
            _col("Status"),
            _col("Roles"),
            _col("Age"),
            _col("Version"),
            _col("Internal-IP", priority=1),
        ],
        _node_row,
    ),
    "deployments": (
        [
            _col("Name", fmt="name"),
            _col("Ready"),
            _col("Up-to-date", "integer"),
            _col("Available", "integer"),
            _col("Age"),
        ],
        _workload_row,
    ),
    "services": (
        [
            _col("Name", fmt="name"),
            _col("Type"),
            _col("Cluster-IP"),
            _col("External-IP"),
            _col("Port(s)"),
            _col("Age"),
        ],
        _service_row,
    ),
}


def table_for(rtype: ResourceType, doc: JSON, include_object: str | None) -> JSON:
    """A Table for a list or single object; rows carry PartialObjectMetadata by default."""
    items = doc.get("items") if doc.get("kind", "").endswith("List") else [doc]
    columns, row_fn = _LAYOUTS.get(
        rtype.plural,
        (
            [_col("Name", fmt="name"), _col("Age")],
            lambda o: [o["metadata"]["name"], _age(o["metadata"].get("creationTimestamp"))],
        ),
    )
    rows = []
    for item in items or []:
        if include_object == "Object":
            obj: JSON = item
        elif include_object == "None":
            obj = {}
        else:
            obj = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": item["metadata"],
            }
        rows.append({"cells": row_fn(item), "object": obj})
    meta: JSON = {"resourceVersion": (doc.get("metadata") or {}).get("resourceVersion", "")}
    if (doc.get("metadata") or {}).get("continue"):
        meta["continue"] = doc["metadata"]["continue"]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": columns,
        "rows": rows,
    }
