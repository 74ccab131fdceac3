"""The informer transforms of the kubelet: only the pod and Node fields it reads are kept.

A hollow agent holds 30,000 pods: full objects cost about 20 KiB each in Python, these about
2 KiB (keys are shared constants, repeated values interned).
"""

from __future__ import annotations

import sys
from typing import Any

from pytest_k8sdr.sim.apimachinery.types import JSON

__all__ = [
    "EXEC_PROBE_ANNOTATION",
    "EXIT_CODE_ANNOTATION",
    "RUN_SECONDS_ANNOTATION",
    "SHUTDOWN_ANNOTATION",
    "resource_version",
    "slim_node",
    "slim_pod",
]

SHUTDOWN_ANNOTATION = "sim.k8sdr.io/shutdown-seconds"
# Read by the prober (pytest_k8sdr.sim.node.probe.EXEC_PROBE_ANNOTATION).
EXEC_PROBE_ANNOTATION = "sim.k8sdr.io/exec-probe"
# How long each container runs before it exits on its own, and with which code (read by
# pytest_k8sdr.sim.node.runtime.exit_plan).
RUN_SECONDS_ANNOTATION = "sim.k8sdr.io/run-seconds"
EXIT_CODE_ANNOTATION = "sim.k8sdr.io/exit-code"
_KEPT_ANNOTATIONS = (
    SHUTDOWN_ANNOTATION,
    EXEC_PROBE_ANNOTATION,
    RUN_SECONDS_ANNOTATION,
    EXIT_CODE_ANNOTATION,
)
_PROBES = ("readinessProbe", "livenessProbe", "startupProbe")
_intern = sys.intern


def _str(value: Any) -> Any:
    return _intern(value) if isinstance(value, str) else value


def slim_pod(pod: JSON) -> JSON:
    """The fields of a pod the kubelet reads; everything else is dropped."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    slim_meta: JSON = {
        "name": meta.get("name"),
        "namespace": _str(meta.get("namespace")),
        "uid": meta.get("uid"),
        "resourceVersion": meta.get("resourceVersion"),
    }
    for key in ("deletionTimestamp", "deletionGracePeriodSeconds"):
        if meta.get(key) is not None:
            slim_meta[key] = meta[key]
    annotations = meta.get("annotations") or {}
    kept = {k: annotations[k] for k in _KEPT_ANNOTATIONS if annotations.get(k) is not None}
    if kept:
        slim_meta["annotations"] = kept
    slim_spec: JSON = {
        "nodeName": _str(spec.get("nodeName")),
        "containers": [
            {
                "name": _str(c.get("name")),
                "image": _str(c.get("image", "")),
                "ports": [
                    {
                        "containerPort": p.get("containerPort"),
                        "protocol": _str(p.get("protocol", "TCP")),
                    }
                    for p in c.get("ports") or []
                ],
            }
            for c in spec.get("containers") or []
        ],
    }
    for slim_c, c in zip(slim_spec["containers"], spec.get("containers") or [], strict=True):
        # The prober's specs (rare, so kept whole); named ports resolve probe ports.
        for key in _PROBES:
            if c.get(key):
                slim_c[key] = c[key]
        for slim_p, p in zip(slim_c["ports"], c.get("ports") or [], strict=True):
            if p.get("name"):
                slim_p["name"] = _str(p["name"])
    if spec.get("hostNetwork"):
        slim_spec["hostNetwork"] = True
    if spec.get("restartPolicy") not in (None, "Always"):
        slim_spec["restartPolicy"] = _str(spec["restartPolicy"])
    slim_status: JSON = {}
    for key in ("phase", "qosClass"):
        if status.get(key) is not None:
            slim_status[key] = _str(status[key])
    for key in ("podIP", "startTime"):
        if status.get(key) is not None:
            slim_status[key] = status[key]
    if status.get("conditions"):
        slim_status["conditions"] = [
            {
                "type": _str(c.get("type")),
                "status": _str(c.get("status")),
                "lastTransitionTime": c.get("lastTransitionTime"),
            }
            for c in status["conditions"]
        ]
    if status.get("containerStatuses"):
        slim_status["containerStatuses"] = [
            {
                "name": _str(s.get("name")),
                "ready": bool(s.get("ready")),
                "started": bool(s.get("started")),
                "restartCount": int(s.get("restartCount") or 0),
                "state": {_str(k): _slim_state(v or {}) for k, v in (s.get("state") or {}).items()},
            }
            for s in status["containerStatuses"]
        ]
    return {"metadata": slim_meta, "spec": slim_spec, "status": slim_status}


def _slim_state(state: JSON) -> JSON:
    slim: JSON = {"startedAt": state.get("startedAt")}
    if state.get("reason") is not None:
        slim["reason"] = _str(state["reason"])
    return slim


def slim_node(node: JSON) -> JSON:
    """The fields of a Node the kubelet reads (its identity and the status it compares)."""
    meta = node.get("metadata") or {}
    status = node.get("status") or {}
    return {
        "metadata": {
            "name": meta.get("name"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "status": {
            "conditions": [
                {
                    "type": _str(c.get("type")),
                    "status": _str(c.get("status")),
                    "reason": _str(c.get("reason")),
                    "message": _str(c.get("message")),
                    "lastTransitionTime": c.get("lastTransitionTime"),
                }
                for c in status.get("conditions") or []
            ],
            "addresses": status.get("addresses") or [],
            "allocatable": status.get("allocatable") or {},
            "nodeInfo": status.get("nodeInfo") or {},
        },
    }


def resource_version(obj: JSON | None) -> int:
    """metadata.resourceVersion as a number (0 when absent)."""
    value = str(((obj or {}).get("metadata") or {}).get("resourceVersion") or "0")
    return int(value) if value.isdigit() else 0
