"""Disruption controller: PodDisruptionBudget status (pkg/controller/disruption/disruption.go).

currentHealthy counts Ready pods that are not terminating and not in disruptedPods;
desiredHealthy and expectedPods follow minAvailable (an integer counts the matching pods) or
maxUnavailable / a percentage (the owning controllers' replicas). disruptedPods entries go
when the pod is gone or terminating, or after the 2-minute deletion timeout.
"""

from __future__ import annotations

import asyncio
import math
import time

from pytest_k8sdr.sim.apimachinery.clock import now_rfc3339, parse_rfc3339
from pytest_k8sdr.sim.apimachinery.errors import ApiError
from pytest_k8sdr.sim.apimachinery.meta import Key, controller_ref, is_terminating, key_of, meta
from pytest_k8sdr.sim.apimachinery.selectors import selector_matches
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.controllers.controller import Controller
from pytest_k8sdr.sim.controllers.podutil import pod_is_ready
from pytest_k8sdr.sim.controllers.workqueue import WorkQueue

NAME = "disruption"
COMPONENT = "controllermanager"
# DeletionTimeout: how long an evicted pod may take to get a deletionTimestamp.
DELETION_TIMEOUT = 120.0

_SCALABLE = {
    "ReplicaSet": "replicasets",
    "StatefulSet": "statefulsets",
    "Deployment": "deployments",
}


class DisruptionController(Controller):
    """Keeps PodDisruptionBudget status current."""

    name = NAME

    def start(self) -> list[asyncio.Task[None]]:
        """Follow PDBs and pods."""
        self.pdbs = self.informers.get("poddisruptionbudgets")
        self.pods = self.informers.get("pods")
        self.queue: WorkQueue[Key] = WorkQueue(NAME, self._sync)
        self.watch(self.pdbs, lambda t, o, n: self.queue.add(key_of(n or o or {})))
        self.watch(self.pods, self._on_pod)
        return [self._spawn(self.queue.run(), "queue")]

    def _on_pod(self, etype: str, old: JSON | None, new: JSON | None) -> None:
        obj = new or old or {}
        ns = meta(obj).get("namespace") or ""
        labels = [meta(o).get("labels") for o in (old, new) if o is not None]
        for pdb in self.pdbs.by_namespace.get(ns, {}).values():
            selector = (pdb.get("spec") or {}).get("selector")
            if any(selector_matches(selector, lab) for lab in labels):
                self.queue.add(key_of(pdb))

    def _expected_scale(self, pods: list[JSON]) -> int | None:
        """getExpectedScale: the sum of the owning controllers' replicas; None if unknown."""
        owners: dict[str, int] = {}
        for pod in pods:
            ref = controller_ref(pod)
            if ref is None:
                return None
            plural = _SCALABLE.get(str(ref.get("kind")))
            if plural is None:
                return None
            uid = str(ref.get("uid"))
            if uid in owners:
                continue
            try:
                owner = self.store.get(plural, meta(pod).get("namespace"), str(ref.get("name")))
            except ApiError:
                return None
            if plural == "replicasets":
                parent = controller_ref(owner)
                if parent is not None and parent.get("kind") == "Deployment":
                    try:
                        dep = self.store.get(
                            "deployments", meta(pod).get("namespace"), str(parent.get("name"))
                        )
                        owners[str(parent.get("uid"))] = int(
                            (dep.get("spec") or {}).get("replicas", 1)
                        )
                        owners[uid] = 0
                        continue
                    except ApiError:
                        return None
            owners[uid] = int((owner.get("spec") or {}).get("replicas", 1))
        return sum(owners.values())

    def _sync(self, key: Key) -> None:
        pdb = self.pdbs.get(*key)
        if pdb is None:
            return
        ns = key[0]
        spec = pdb.get("spec") or {}
        selector = spec.get("selector")
        # policy/v1: an empty selector matches every pod of the namespace.
        pods = [
            p
            for p in self.pods.by_namespace.get(ns, {}).values()
            if selector_matches(selector, meta(p).get("labels"))
        ]
        old_status = pdb.get("status") or {}
        wall = time.time()
        disrupted: dict[str, str] = {}
        recheck: float | None = None
        by_name = {meta(p)["name"]: p for p in pods}
        for pod_name, stamp in (old_status.get("disruptedPods") or {}).items():
            pod = by_name.get(pod_name)
            if pod is None or is_terminating(pod):
                continue
            when = parse_rfc3339(stamp) or wall
            if when + DELETION_TIMEOUT <= wall:
                continue
            disrupted[pod_name] = stamp
            left = when + DELETION_TIMEOUT - wall
            recheck = left if recheck is None else min(recheck, left)
        healthy = sum(
            1
            for p in pods
            if pod_is_ready(p) and not is_terminating(p) and meta(p)["name"] not in disrupted
        )
        expected: int
        desired: int
        min_available = spec.get("minAvailable")
        max_unavailable = spec.get("maxUnavailable")
        error = False
        if max_unavailable is not None or (
            isinstance(min_available, str) and min_available.endswith("%")
        ):
            scale = self._expected_scale(pods)
            if scale is None:
                error = True
                expected, desired = len(pods), 0
            elif max_unavailable is not None:
                expected = scale
                desired = expected - _scaled(max_unavailable, expected)
                desired = max(desired, 0)
            else:
                expected = scale
                desired = _scaled(str(min_available), expected)
        else:
            expected = len(pods)
            desired = int(min_available) if min_available is not None else 0
        allowed = 0 if error else max(0, healthy - desired)
        if expected <= 0 and not pods:
            self.recorder.record(
                pdb,
                "PodDisruptionBudget",
                "Normal",
                "NoPods",
                "No matching pods found",
                COMPONENT,
                api_version="policy/v1",
            )
        reason = "SufficientPods" if allowed > 0 else "InsufficientPods"
        status: JSON = {
            "observedGeneration": meta(pdb).get("generation", 1),
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "expectedPods": expected,
            "disruptionsAllowed": allowed,
        }
        if disrupted:
            status["disruptedPods"] = disrupted
        conditions = [dict(c) for c in old_status.get("conditions") or []]
        value = "True" if allowed > 0 else "False"
        cond = next((c for c in conditions if c.get("type") == "DisruptionAllowed"), None)
        if cond is None:
            conditions.append(
                {
                    "type": "DisruptionAllowed",
                    "status": value,
                    "reason": reason,
                    "message": "",
                    "lastTransitionTime": now_rfc3339(),
                    "observedGeneration": status["observedGeneration"],
                }
            )
        elif cond.get("status") != value or cond.get("reason") != reason:
            cond.update(
                status=value,
                reason=reason,
                lastTransitionTime=now_rfc3339(),
                observedGeneration=status["observedGeneration"],
            )
        status["conditions"] = conditions
        if recheck is not None:
            self.queue.add_after(key, recheck + 0.01)
        if old_status == status:
            return
        try:
            live = self.store.get("poddisruptionbudgets", *key)
        except ApiError as exc:
            if exc.code == 404:
                return
            raise
        live["status"] = status
        self.store.update("poddisruptionbudgets", key[0], key[1], live, subresource="status")


def _scaled(value: int | str, total: int) -> int:
    """GetScaledValueFromIntOrPercent with roundUp=true."""
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        return math.ceil(int(text[:-1]) * total / 100)
    return int(text)
