"""ReplicaSet controller (pkg/controller/replicaset/replica_set.go).

Counts active pods (not terminating, not terminal: controller_utils.go IsPodActive), so a pod
deleted by the taint-eviction controller is replaced at once even while it stays Terminating.
Surplus pods are deleted in upstream's order (unassigned, pending, not ready first). Orphan
adoption is not modelled.
"""

from __future__ import annotations

import copy
import time

from pytest_k8sdr.sim.apimachinery.clock import parse_rfc3339
from pytest_k8sdr.sim.apimachinery.meta import (
    Key,
    get_condition,
    key_of,
    meta,
    owner_reference,
)
from pytest_k8sdr.sim.apimachinery.selectors import selector_matches
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.controllers.controller import OwnerController
from pytest_k8sdr.sim.controllers.podutil import pod_is_active, pod_is_ready, pod_phase

NAME = "replicaset"
COMPONENT = "replicaset-controller"
# controller.SlowStartInitialBatchSize / burstReplicas
BURST_REPLICAS = 500


def pod_from_template(template: JSON, owner: JSON, api_version: str, kind: str) -> JSON:
    """A pod from a template, owned by `owner` (controller_utils.go GetPodFromTemplate)."""
    t = copy.deepcopy(template or {})
    tmeta = t.get("metadata") or {}
    pod_meta: JSON = {
        "labels": dict(tmeta.get("labels") or {}),
        "annotations": dict(tmeta.get("annotations") or {}),
        "generateName": f"{meta(owner)['name']}-",
        "ownerReferences": [owner_reference(owner, api_version, kind)],
    }
    if tmeta.get("finalizers"):
        pod_meta["finalizers"] = list(tmeta["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": t.get("spec") or {}}


def available(pod: JSON, min_ready_seconds: int, now: float) -> bool:
    """podutil.IsPodAvailable."""
    if not pod_is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    cond = get_condition((pod.get("status") or {}).get("conditions"), "Ready") or {}
    since = parse_rfc3339(cond.get("lastTransitionTime"))
    return since is not None and since + min_ready_seconds <= now


def deletion_rank(pod: JSON, siblings_on_node: dict[str, int]) -> tuple[int, int, int, int, float]:
    """Lower deletes first (controller_utils.go ActivePodsWithRanks.Less, simplified)."""
    spec = pod.get("spec") or {}
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(pod_phase(pod), 1)
    created = parse_rfc3339(meta(pod).get("creationTimestamp")) or 0.0
    return (
        1 if spec.get("nodeName") else 0,
        phase_rank,
        1 if pod_is_ready(pod) else 0,
        -siblings_on_node.get(spec.get("nodeName") or "", 0),
        -created,  # newer pods go first
    )


class ReplicaSetController(OwnerController):
    """Keeps spec.replicas active pods for each ReplicaSet."""

    name = NAME
    plural = "replicasets"
    kind = "ReplicaSet"
    api_version = "apps/v1"
    component = COMPONENT

    def _sync(self, key: Key) -> None:
        rs = self.owners.get(*key)
        if rs is None:
            return
        selector = (rs.get("spec") or {}).get("selector")
        owned = [p for p in self._owned(rs) if selector_matches(selector, meta(p).get("labels"))]
        active = [p for p in owned if pod_is_active(p)]
        spec = rs.get("spec") or {}
        want = int(spec.get("replicas", 1))
        if not meta(rs).get("deletionTimestamp"):
            diff = len(active) - want
            if diff < 0:
                for _ in range(min(-diff, BURST_REPLICAS)):
                    pod = pod_from_template(spec.get("template") or {}, rs, "apps/v1", self.kind)
                    created = self.store.create("pods", key[0], pod)
                    self._event(
                        rs, "Normal", "SuccessfulCreate", f"Created pod: {meta(created)['name']}"
                    )
            elif diff > 0:
                per_node: dict[str, int] = {}
                for p in active:
                    n = (p.get("spec") or {}).get("nodeName") or ""
                    per_node[n] = per_node.get(n, 0) + 1
                victims = sorted(active, key=lambda p: deletion_rank(p, per_node))[:diff]
                for pod in victims:
                    self._delete_child(rs, (key[0], meta(pod)["name"]))
        self._update_status(rs)

    def _update_status(self, rs: JSON) -> None:
        key = key_of(rs)
        spec = rs.get("spec") or {}
        selector = spec.get("selector")
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        active = [
            p
            for p in self._owned(rs)
            if pod_is_active(p) and selector_matches(selector, meta(p).get("labels"))
        ]
        wall = time.time()
        min_ready = int(spec.get("minReadySeconds") or 0)
        status: JSON = {
            "replicas": len(active),
            "fullyLabeledReplicas": sum(
                1
                for p in active
                if all(
                    (meta(p).get("labels") or {}).get(k) == v for k, v in template_labels.items()
                )
            ),
            "readyReplicas": sum(1 for p in active if pod_is_ready(p)),
            "availableReplicas": sum(1 for p in active if available(p, min_ready, wall)),
            "observedGeneration": meta(rs).get("generation", 1),
        }
        status = {k: v for k, v in status.items() if v or k in ("replicas", "observedGeneration")}
        old = rs.get("status") or {}
        if min_ready > 0 and status.get("readyReplicas", 0) > status.get("availableReplicas", 0):
            # Re-check once the pods have been ready for minReadySeconds.
            self.queue.add_after(key, float(min_ready))
        if all(old.get(k) == status.get(k) for k in set(old) | set(status) if k != "conditions"):
            return
        self._write_status(key, status, keep=("conditions",))
