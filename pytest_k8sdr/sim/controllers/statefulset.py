"""StatefulSet controller (pkg/controller/statefulset/stateful_set_control.go).

Pod identity is its name `<set>-<ordinal>`: a replacement is created only once the old object
is gone (the store refuses a second object of that name), so a pod stuck Terminating on a dead
node holds its identity. OrderedReady creates one pod at a time, in order, each waiting for
its predecessors to be Running and Ready; Parallel does not wait. Rolling updates replace pods
with an outdated controller-revision-hash from the highest ordinal down, one at a time.
A pod's claims from `volumeClaimTemplates` are created before it (`statefulsetclaims`).
Each template gets a ControllerRevision `<set>-<hash>` (its data the template patch, numbered
after the newest; a template seen before has its revision renumbered as the newest), as
stateful_set_control.go's getStatefulSetRevisions and history/controller_history.go make
them, so `kubectl rollout history` and `rollout undo` work. A pod's controller-revision-hash
label is that revision's name, as status.currentRevision/updateRevision are
(stateful_set_utils.go newVersionedStatefulSetPod/setPodRevision). Revisions that no pod and
no status field uses are pruned, oldest first, down to spec.revisionHistoryLimit
(stateful_set_control.go truncateHistory). Not modelled: a rollout's separate current and
update revisions (status.currentRevision is the update revision at once), hash collisions
(collisionCount stays 0).
"""

from __future__ import annotations

import copy

from pytest_k8sdr.sim.apimachinery.errors import ApiError
from pytest_k8sdr.sim.apimachinery.meta import (
    Key,
    controller_ref,
    is_terminating,
    key_of,
    meta,
    owner_reference,
)
from pytest_k8sdr.sim.apimachinery.patch import MERGE_PATCH
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.controllers.controller import OwnerController
from pytest_k8sdr.sim.controllers.deployment import template_hash
from pytest_k8sdr.sim.controllers.podutil import pod_is_ready, pod_phase
from pytest_k8sdr.sim.controllers.statefulsetclaims import add_claim_volumes, create_claims

NAME = "statefulset"
COMPONENT = "statefulset-controller"
REVISION_LABEL = "controller-revision-hash"  # apps.StatefulSetRevisionLabel
# apps/v1 defaults.go SetDefaults_StatefulSet.
DEFAULT_REVISION_HISTORY_LIMIT = 10


def revision_name(set_name: str, digest: str) -> str:
    """history.ControllerRevisionName: `<set>-<hash>`, the prefix cut to 223 bytes."""
    return f"{set_name[:223]}-{digest}"


def _ordinal(set_name: str, pod_name: str) -> int | None:
    prefix = f"{set_name}-"
    if not pod_name.startswith(prefix):
        return None
    rest = pod_name[len(prefix) :]
    return int(rest) if rest.isdigit() else None


def _healthy(pod: JSON) -> bool:
    return pod_phase(pod) == "Running" and pod_is_ready(pod) and not is_terminating(pod)


class StatefulSetController(OwnerController):
    """Keeps one pod per identity for each StatefulSet."""

    name = NAME
    plural = "statefulsets"
    kind = "StatefulSet"
    api_version = "apps/v1"
    component = COMPONENT
    deleted_message = "delete Pod {name} in StatefulSet {owner} successful"

    def _pods_of(self, sts: JSON) -> dict[int, JSON]:
        ns, name = key_of(sts)
        uid = meta(sts).get("uid")
        out: dict[int, JSON] = {}
        bucket = self.children.by_namespace.get(ns, {})
        replicas = int((sts.get("spec") or {}).get("replicas", 1))
        # Names are deterministic: look them up instead of scanning the namespace, plus any
        # condemned ordinals beyond replicas found through the owner index.
        for i in range(replicas):
            pod = bucket.get(f"{name}-{i}")
            if pod is not None and (controller_ref(pod) or {}).get("uid") == uid:
                out[i] = pod
        for pod in self._owned(sts):
            ordinal = _ordinal(name, meta(pod)["name"])
            if ordinal is not None:
                out[ordinal] = pod
        return out

    def _new_pod(self, sts: JSON, ordinal: int, revision: str) -> JSON:
        ns, name = key_of(sts)
        spec = sts.get("spec") or {}
        template = copy.deepcopy(spec.get("template") or {})
        tmeta = template.get("metadata") or {}
        pod_name = f"{name}-{ordinal}"
        labels = dict(tmeta.get("labels") or {})
        labels["statefulset.kubernetes.io/pod-name"] = pod_name
        labels["apps.kubernetes.io/pod-index"] = str(ordinal)
        labels[REVISION_LABEL] = revision
        pod_spec = template.get("spec") or {}
        pod_spec.setdefault("hostname", pod_name)
        if spec.get("serviceName"):
            pod_spec.setdefault("subdomain", spec["serviceName"])
        add_claim_volumes(pod_spec, sts, ordinal)
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": ns,
                "labels": labels,
                "annotations": dict(tmeta.get("annotations") or {}),
                "ownerReferences": [owner_reference(sts, self.api_version, self.kind)],
            },
            "spec": pod_spec,
        }

    def _sync(self, key: Key) -> None:
        sts = self.owners.get(*key)
        if sts is None or meta(sts).get("deletionTimestamp"):
            return
        spec = sts.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        parallel = spec.get("podManagementPolicy") == "Parallel"
        digest = template_hash(spec.get("template") or {})
        revision = revision_name(key[1], digest)
        self._record_revision(sts, revision, digest)
        pods = self._pods_of(sts)
        ns, name = key
        halted = False
        for i in range(replicas):
            pod = pods.get(i)
            if pod is not None and pod_phase(pod) == "Failed" and not is_terminating(pod):
                # A failed pod is deleted and recreated (isFailed).
                self._delete(sts, pod)
                pod = None
                pods.pop(i, None)
                if not parallel:
                    halted = True
                    break
                continue
            if pod is None:
                if halted:
                    break
                if f"{name}-{i}" in self.children.by_namespace.get(ns, {}):
                    # The name is still taken by a Terminating pod (or a foreign one): wait.
                    if not parallel:
                        break
                    continue
                for claim in create_claims(self.store, sts, i, f"{name}-{i}"):
                    self._event(
                        sts,
                        "Normal",
                        "SuccessfulCreate",
                        f"create Claim {claim} Pod {name}-{i} in StatefulSet {name} success",
                    )
                try:
                    self.store.create("pods", ns, self._new_pod(sts, i, revision))
                except ApiError as exc:
                    if exc.code != 409:
                        raise
                    if not parallel:
                        break
                    continue
                self._event(
                    sts,
                    "Normal",
                    "SuccessfulCreate",
                    f"create Pod {name}-{i} in StatefulSet {name} successful",
                )
                if not parallel:
                    break  # monotonic: one creation at a time
                continue
            if not parallel and (is_terminating(pod) or not _healthy(pod)):
                break
        else:
            if not parallel:
                self._scale_down_and_update(sts, pods, replicas, parallel, revision)
        if parallel:
            self._scale_down_and_update(sts, pods, replicas, parallel, revision)
        self._truncate_history(sts, revision)
        self._update_status(sts, revision)

    def _scale_down_and_update(
        self, sts: JSON, pods: dict[int, JSON], replicas: int, parallel: bool, revision: str
    ) -> None:
        condemned = sorted((i for i in pods if i >= replicas), reverse=True)
        for i in condemned:
            pod = pods[i]
            if is_terminating(pod):
                if not parallel:
                    return
                continue
            if not parallel and not all(_healthy(p) for j, p in pods.items() if j < i):
                return
            self._delete(sts, pod)
            if not parallel:
                return
        if condemned:
            return
        strategy = (sts.get("spec") or {}).get("updateStrategy") or {}
        if strategy.get("type") == "OnDelete":
            return
        partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
        live = [pods[i] for i in sorted(pods) if i < replicas]
        if len(live) < replicas or not all(_healthy(p) for p in live):
            return  # update only a fully healthy set, one pod at a time
        for i in sorted((i for i in pods if i < replicas), reverse=True):
            if i < partition:
                break
            pod = pods[i]
            if (meta(pod).get("labels") or {}).get(REVISION_LABEL) != revision:
                self._delete(sts, pod)
                return

    def _delete(self, sts: JSON, pod: JSON) -> None:
        self._delete_child(sts, key_of(pod))

    def _revisions(self, sts: JSON) -> list[JSON]:
        m = meta(sts)
        return [
            r
            for r in self.store.iter_objects("controllerrevisions", m["namespace"])
            if (controller_ref(r) or {}).get("uid") == m["uid"]
        ]

    def _record_revision(self, sts: JSON, name: str, digest: str) -> None:
        """The ControllerRevision of the set's current template, the newest of its revisions."""
        ns = meta(sts)["namespace"]
        owned = self._revisions(sts)
        newest = max((int(r.get("revision") or 0) for r in owned), default=0)
        same = next((r for r in owned if meta(r)["name"] == name), None)
        if same is not None:
            if int(same.get("revision") or 0) < newest:
                self.store.patch(
                    "controllerrevisions", ns, name, {"revision": newest + 1}, MERGE_PATCH
                )
            return
        template = copy.deepcopy((sts.get("spec") or {}).get("template") or {})
        template["$patch"] = "replace"  # getPatch: the template is replaced whole on rollback
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        labels["controller.kubernetes.io/hash"] = digest
        history = {
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": labels,
                "ownerReferences": [owner_reference(sts, self.api_version, self.kind)],
            },
            "data": {"spec": {"template": template}},
            "revision": newest + 1,
        }
        try:
            self.store.create("controllerrevisions", ns, history)
        except ApiError as err:
            if err.code != 409:
                raise

    def _truncate_history(self, sts: JSON, revision: str) -> None:
        """Delete the oldest revisions in use by nothing beyond revisionHistoryLimit.

        truncateHistory (stateful_set_control.go): the current and update revisions and every
        pod's revision are live; the others, by revision number, then creation time and name
        (history.SortControllerRevisions), are history.
        """
        limit = int(
            (sts.get("spec") or {}).get("revisionHistoryLimit", DEFAULT_REVISION_HISTORY_LIMIT)
        )
        live = {revision} | {
            (meta(p).get("labels") or {}).get(REVISION_LABEL) for p in self._pods_of(sts).values()
        }
        history = sorted(
            (r for r in self._revisions(sts) if meta(r)["name"] not in live),
            key=lambda r: (
                int(r.get("revision") or 0),
                str(meta(r).get("creationTimestamp") or ""),
                meta(r)["name"],
            ),
        )
        if limit < 0 or len(history) <= limit:
            return
        for old in history[: len(history) - limit]:
            try:
                self.store.delete("controllerrevisions", *key_of(old))
            except ApiError as exc:
                if exc.code != 404:
                    raise

    def _update_status(self, sts: JSON, revision: str) -> None:
        pods = self._pods_of(sts)
        present = [p for p in pods.values() if not is_terminating(p)]
        status: JSON = {
            "observedGeneration": meta(sts).get("generation", 1),
            "replicas": len(present),
            "readyReplicas": sum(1 for p in present if pod_is_ready(p)),
            "availableReplicas": sum(1 for p in present if pod_is_ready(p)),
            "currentReplicas": sum(
                1 for p in present if (meta(p).get("labels") or {}).get(REVISION_LABEL) == revision
            ),
            "updatedReplicas": sum(
                1 for p in present if (meta(p).get("labels") or {}).get(REVISION_LABEL) == revision
            ),
            "currentRevision": revision,
            "updateRevision": revision,
            "collisionCount": 0,
        }
        old = sts.get("status") or {}
        if all(old.get(k) == v for k, v in status.items()):
            return
        self._write_status(key_of(sts), status)
