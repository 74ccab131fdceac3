"""DaemonSet controller (pkg/controller/daemon/daemon_controller.go).

One pod per eligible node, created with required node affinity to that node (the scheduler
binds it) and with the DaemonSet tolerations (pkg/controller/daemon/util
AddOrUpdateDaemonPodTolerations):
not-ready/unreachable NoExecute without tolerationSeconds, so they are never evicted, plus
NoSchedule tolerations of the pressure, unschedulable and (hostNetwork) network-unavailable taints.
Rolling updates delete outdated pods one node at a time (maxUnavailable 1).
"""

from __future__ import annotations

import asyncio
import copy

from pytest_k8sdr.sim.apimachinery.meta import (
    Key,
    is_terminating,
    key_of,
    meta,
    owner_reference,
)
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.apimachinery.wellknown import (
    TAINT_DISK_PRESSURE,
    TAINT_MEMORY_PRESSURE,
    TAINT_NETWORK_UNAVAILABLE,
    TAINT_NOT_READY,
    TAINT_PID_PRESSURE,
    TAINT_UNREACHABLE,
    TAINT_UNSCHEDULABLE,
)
from pytest_k8sdr.sim.controllers.controller import OwnerController
from pytest_k8sdr.sim.controllers.deployment import template_hash
from pytest_k8sdr.sim.controllers.nodeaffinity import pod_matches_node_selection
from pytest_k8sdr.sim.controllers.podutil import pod_is_ready, pod_is_terminal
from pytest_k8sdr.sim.controllers.taints import node_taints, tolerates

NAME = "daemonset"
COMPONENT = "daemonset-controller"
HASH_LABEL = "controller-revision-hash"


def daemon_tolerations(spec: JSON) -> list[JSON]:
    """The pod's tolerations plus the DaemonSet ones it does not already have."""
    tolerations: list[JSON] = list(spec.get("tolerations") or [])
    extra = [
        {"key": TAINT_NOT_READY, "operator": "Exists", "effect": "NoExecute"},
        {"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute"},
        {"key": TAINT_DISK_PRESSURE, "operator": "Exists", "effect": "NoSchedule"},
        {"key": TAINT_MEMORY_PRESSURE, "operator": "Exists", "effect": "NoSchedule"},
        {"key": TAINT_PID_PRESSURE, "operator": "Exists", "effect": "NoSchedule"},
        {"key": TAINT_UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"},
    ]
    if spec.get("hostNetwork"):
        extra.append(
            {"key": TAINT_NETWORK_UNAVAILABLE, "operator": "Exists", "effect": "NoSchedule"}
        )
    for tol in extra:
        if not any(
            t.get("key") == tol["key"]
            and t.get("effect") == tol["effect"]
            and t.get("operator") == "Exists"
            for t in tolerations
        ):
            tolerations.append(tol)
    return tolerations


def _affinity_node(pod: JSON) -> str | None:
    terms = (
        (((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        or {}
    ).get("nodeSelectorTerms") or []
    for term in terms:
        for field in term.get("matchFields") or []:
            if field.get("key") == "metadata.name" and field.get("values"):
                return str(field["values"][0])
    return None


class DaemonSetController(OwnerController):
    """Runs one pod of each DaemonSet on every node that should run it."""

    name = NAME
    plural = "daemonsets"
    kind = "DaemonSet"
    api_version = "apps/v1"
    component = COMPONENT

    def start(self) -> list[asyncio.Task[None]]:
        """Follow DaemonSets, their pods and the nodes."""
        tasks = super().start()
        self.nodes = self.informers.get("nodes")
        self.watch(self.nodes, self._on_node)
        return tasks

    def _on_node(self, etype: str, old: JSON | None, new: JSON | None) -> None:
        if (
            old is not None
            and new is not None
            and (
                meta(old).get("labels") == meta(new).get("labels")
                and node_taints(old) == node_taints(new)
            )
        ):
            return
        for ds in self.owners.list():
            self.queue.add(key_of(ds))

    def _should_run(self, ds: JSON, node: JSON) -> tuple[bool, bool]:
        """(should run, should keep running) as NodeShouldRunDaemonPod answers."""
        template = (ds.get("spec") or {}).get("template") or {}
        pod = {"metadata": template.get("metadata") or {}, "spec": dict(template.get("spec") or {})}
        pod["spec"]["tolerations"] = daemon_tolerations(pod["spec"])
        if not pod_matches_node_selection(pod, node):
            return False, False
        run = keep = True
        for taint in node_taints(node):
            if tolerates(pod["spec"]["tolerations"], taint):
                continue
            if taint.get("effect") == "NoExecute":
                return False, False
            if taint.get("effect") == "NoSchedule":
                run = False
        return run, keep

    def _sync(self, key: Key) -> None:
        ds = self.owners.get(*key)
        if ds is None or meta(ds).get("deletionTimestamp"):
            return
        spec = ds.get("spec") or {}
        revision = template_hash(spec.get("template") or {})
        by_node: dict[str, list[JSON]] = {}
        for pod in self._owned(ds):
            node_name = (pod.get("spec") or {}).get("nodeName") or _affinity_node(pod) or ""
            by_node.setdefault(node_name, []).append(pod)
        desired = scheduled = ready = misscheduled = updated = 0
        outdated: list[JSON] = []
        unavailable = 0
        for node in self.nodes.list():
            node_name = meta(node)["name"]
            run, keep = self._should_run(ds, node)
            pods = [p for p in by_node.pop(node_name, []) if not is_terminating(p)]
            failed = [p for p in pods if pod_is_terminal(p)]
            for pod in failed:
                self._delete(ds, pod)
            pods = [p for p in pods if not pod_is_terminal(p)]
            if run:
                desired += 1
            if (run or keep) and not pods and run:
                self._create(ds, node_name, revision)
                unavailable += 1
                continue
            if not keep and pods:
                for pod in pods:
                    self._delete(ds, pod)
                misscheduled += 1
                continue
            if pods:
                scheduled += 1
                # Keep the oldest, delete extras.
                pods.sort(key=lambda p: str(meta(p).get("creationTimestamp")))
                for extra in pods[1:]:
                    self._delete(ds, extra)
                pod = pods[0]
                if pod_is_ready(pod):
                    ready += 1
                else:
                    unavailable += 1
                if (meta(pod).get("labels") or {}).get(HASH_LABEL) == revision:
                    updated += 1
                else:
                    outdated.append(pod)
                if not run:
                    misscheduled += 1
        # Pods left in by_node belong to nodes that are gone: pod GC removes them.
        strategy = spec.get("updateStrategy") or {}
        if (
            strategy.get("type", "RollingUpdate") == "RollingUpdate"
            and outdated
            and unavailable == 0
        ):
            self._delete(ds, outdated[0])
        status = {
            "desiredNumberScheduled": desired,
            "currentNumberScheduled": scheduled,
            "numberMisscheduled": misscheduled,
            "numberReady": ready,
            "numberAvailable": ready,
            "numberUnavailable": max(0, desired - ready),
            "updatedNumberScheduled": updated,
            "observedGeneration": meta(ds).get("generation", 1),
        }
        if all((ds.get("status") or {}).get(k) == v for k, v in status.items()):
            return
        self._write_status(key, status)

    def _create(self, ds: JSON, node_name: str, revision: str) -> None:
        spec = ds.get("spec") or {}
        template = copy.deepcopy(spec.get("template") or {})
        tmeta = template.get("metadata") or {}
        pod_spec = template.get("spec") or {}
        pod_spec["tolerations"] = daemon_tolerations(pod_spec)
        affinity = pod_spec.setdefault("affinity", {})
        # ReplaceDaemonSetPodNodeNameNodeAffinity: the scheduler binds the pod to this node.
        affinity["nodeAffinity"] = {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchFields": [
                            {"key": "metadata.name", "operator": "In", "values": [node_name]}
                        ]
                    }
                ]
            }
        }
        labels = dict(tmeta.get("labels") or {})
        labels[HASH_LABEL] = revision
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": f"{meta(ds)['name']}-",
                "labels": labels,
                "annotations": dict(tmeta.get("annotations") or {}),
                "ownerReferences": [owner_reference(ds, self.api_version, self.kind)],
            },
            "spec": pod_spec,
        }
        created = self.store.create("pods", meta(ds).get("namespace"), pod)
        self._event(ds, "Normal", "SuccessfulCreate", f"Created pod: {meta(created)['name']}")

    def _delete(self, ds: JSON, pod: JSON) -> None:
        self._delete_child(ds, key_of(pod))
