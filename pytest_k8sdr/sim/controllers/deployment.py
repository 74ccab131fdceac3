"""Deployment controller (pkg/controller/deployment/{sync,rolling,recreate}.go).

One ReplicaSet per pod-template hash; a changed template (e.g. `kubectl rollout restart`'s
restartedAt annotation) starts a rollout bounded by maxSurge/maxUnavailable, or Recreate.
Revision history is kept to revisionHistoryLimit; the Progressing condition times out
after progressDeadlineSeconds without progress (progress.go). Not modelled: paused
rollouts' special cases beyond skipping the rollout.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from pytest_k8sdr.sim.apimachinery.clock import now_rfc3339, parse_rfc3339
from pytest_k8sdr.sim.apimachinery.errors import ApiError
from pytest_k8sdr.sim.apimachinery.meta import Key, key_of, meta, owner_reference
from pytest_k8sdr.sim.apimachinery.quantity import scaled_value
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.controllers.controller import OwnerController

NAME = "deployment"
COMPONENT = "deployment-controller"
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
_SAFE = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery rand.SafeEncodeString alphabet
_COMPLETE = "NewReplicaSetAvailable"
_TIMED_OUT = "ProgressDeadlineExceeded"  # deploymentutil.TimedOutReason
_NO_DEADLINE = 2**31 - 1  # math.MaxInt32: no deadline (deploymentutil.HasProgressDeadline)


def _without_nulls(value: Any) -> Any:
    """A copy without null members.

    Go decodes a null into the zero value, so `"creationTimestamp": null` (what kubectl rollout
    undo's patch carries) is the same template as none at all.
    """
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def template_hash(template: JSON) -> str:
    """A stable short hash of a pod template (controller.ComputeHash, not bit-identical)."""
    t = _strip_hash(template)
    digest = hashlib.sha256(json.dumps(t, sort_keys=True).encode()).digest()
    n = int.from_bytes(digest[:8], "big")
    out = ""
    for _ in range(10):
        out += _SAFE[n % len(_SAFE)]
        n //= len(_SAFE)
    return out


def _strip_hash(template: JSON) -> JSON:
    """The template as deploymentutil.EqualIgnoreHash compares it: no pod-template-hash label."""
    t: JSON = _without_nulls(template or {})
    labels = (t.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    return t


def _replicas(rs: JSON) -> int:
    return int((rs.get("spec") or {}).get("replicas") or 0)


def _status(rs: JSON, field: str) -> int:
    return int((rs.get("status") or {}).get(field) or 0)


def _revision(rs: JSON) -> int:
    try:
        return int((meta(rs).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


class DeploymentController(OwnerController):
    """Rolls Deployments out through ReplicaSets."""

    name = NAME
    plural = "deployments"
    kind = "Deployment"
    api_version = "apps/v1"
    component = COMPONENT
    child_plural = "replicasets"

    def _sync(self, key: Key) -> None:
        d = self.owners.get(*key)
        if d is None or meta(d).get("deletionTimestamp"):
            return
        spec = d.get("spec") or {}
        sets = self._owned(d)
        template = spec.get("template") or {}
        want_hash = template_hash(template)
        new_rs = next((rs for rs in sets if meta(rs)["name"] == f"{key[1]}-{want_hash}"), None)
        if new_rs is None:
            new_rs = next(
                (
                    rs
                    for rs in sets
                    if _strip_hash((rs.get("spec") or {}).get("template") or {})
                    == _strip_hash(template)
                ),
                None,
            )
        old_sets = [rs for rs in sets if new_rs is None or meta(rs)["uid"] != meta(new_rs)["uid"]]
        if new_rs is not None:
            new_rs = self._renumber(d, new_rs, old_sets)
        replicas = int(spec.get("replicas", 1))
        if spec.get("paused"):
            self._sync_status(d, new_rs, old_sets)
            return
        strategy = spec.get("strategy") or {}
        created = new_rs is None
        if strategy.get("type") == "Recreate":
            self._recreate(d, new_rs, old_sets, replicas, want_hash)
        else:
            self._rolling(d, new_rs, old_sets, replicas, want_hash, strategy)
        self._cleanup(d)
        d = self.owners.get(*key) or d
        sets = self._owned(d)
        new_rs = next((rs for rs in sets if meta(rs)["name"] == f"{key[1]}-{want_hash}"), new_rs)
        old_sets = [rs for rs in sets if new_rs is None or meta(rs)["uid"] != meta(new_rs)["uid"]]
        self._sync_status(d, new_rs, old_sets, created=created and new_rs is not None)

    def _create_new_rs(self, d: JSON, old_sets: list[JSON], want_hash: str, replicas: int) -> JSON:
        spec = d.get("spec") or {}
        template = copy.deepcopy(spec.get("template") or {})
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = want_hash
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = want_hash
        revision = max([_revision(rs) for rs in old_sets] + [0]) + 1
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        rs: JSON = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{meta(d)['name']}-{want_hash}",
                "namespace": meta(d).get("namespace"),
                "labels": labels,
                "annotations": {
                    REVISION: str(revision),
                    "deployment.kubernetes.io/desired-replicas": str(int(spec.get("replicas", 1))),
                },
                "ownerReferences": [owner_reference(d, self.api_version, self.kind)],
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                "selector": selector,
                "template": template,
            },
        }
        try:
            created = self.store.create("replicasets", meta(d).get("namespace"), rs)
        except ApiError as exc:
            if exc.code != 409:
                raise
            created = self.store.get(
                "replicasets", meta(d).get("namespace"), rs["metadata"]["name"]
            )
        if replicas > 0:
            self._event_scaled(d, created, 0, replicas)
        self._set_revision(d, revision)
        return created

    def _renumber(self, d: JSON, rs: JSON, old_sets: list[JSON]) -> JSON:
        """A rollback: the older ReplicaSet whose template is the Deployment's again.

        It becomes the newest revision, its former numbers kept in the revision history.

        sync.go getNewReplicaSet and util/deployment_util.go SetNewReplicaSetAnnotations.
        """
        revision = max([_revision(o) for o in old_sets] + [0]) + 1
        if _revision(rs) >= revision:
            self._set_revision(d, _revision(rs))
            return rs
        ns, name = key_of(rs)
        live = self.store.get("replicasets", ns, name)
        annotations = live.setdefault("metadata", {}).setdefault("annotations", {})
        former = annotations.get(REVISION)
        if former:
            history = annotations.get(REVISION_HISTORY)
            annotations[REVISION_HISTORY] = f"{history},{former}" if history else former
        annotations[REVISION] = str(revision)
        updated = self.store.update("replicasets", ns, name, live)
        self._set_revision(d, revision)
        return updated

    def _set_revision(self, d: JSON, revision: int) -> None:
        ns, name = key_of(d)
        live = self.store.get("deployments", ns, name)
        annotations = live.setdefault("metadata", {}).setdefault("annotations", {})
        if annotations.get(REVISION) != str(revision):
            annotations[REVISION] = str(revision)
            self.store.update("deployments", ns, name, live)

    def _scale(self, d: JSON, rs: JSON, replicas: int) -> None:
        old = _replicas(rs)
        if old == replicas:
            return
        ns, name = key_of(rs)
        live = self.store.get("replicasets", ns, name)
        live["spec"]["replicas"] = replicas
        annotations = live.setdefault("metadata", {}).setdefault("annotations", {})
        annotations["deployment.kubernetes.io/desired-replicas"] = str(
            int((d.get("spec") or {}).get("replicas", 1))
        )
        self.store.update("replicasets", ns, name, live)
        self._event_scaled(d, rs, old, replicas)

    def _event_scaled(self, d: JSON, rs: JSON, old: int, new: int) -> None:
        direction = "up" if new > old else "down"
        self._event(
            d,
            "Normal",
            "ScalingReplicaSet",
            f"Scaled {direction} replica set {meta(rs)['name']} from {old} to {new}",
        )

    def _recreate(
        self, d: JSON, new_rs: JSON | None, old_sets: list[JSON], replicas: int, want_hash: str
    ) -> None:
        for rs in old_sets:
            self._scale(d, rs, 0)
        # Wait until no old pod is left running (recreate.go oldPodsRunning).
        if any(_status(rs, "replicas") > 0 for rs in old_sets):
            return
        if new_rs is None:
            self._create_new_rs(d, old_sets, want_hash, replicas)
        else:
            self._scale(d, new_rs, replicas)

    def _rolling(
        self,
        d: JSON,
        new_rs: JSON | None,
        old_sets: list[JSON],
        replicas: int,
        want_hash: str,
        strategy: JSON,
    ) -> None:
        ru = strategy.get("rollingUpdate") or {}
        surge = scaled_value(ru.get("maxSurge", "25%"), replicas, round_up=True)
        unavailable = scaled_value(ru.get("maxUnavailable", "25%"), replicas, round_up=False)
        if surge == 0 and unavailable == 0:
            unavailable = 1  # deploymentutil.ResolveFenceposts
        if new_rs is None:
            total = sum(_replicas(rs) for rs in old_sets)
            start = replicas if not old_sets else max(0, min(replicas, replicas + surge - total))
            new_rs = self._create_new_rs(d, old_sets, want_hash, start)
        # reconcileNewReplicaSet
        all_sets = [*old_sets, new_rs]
        new_replicas = _replicas(new_rs)
        if new_replicas > replicas:
            self._scale(d, new_rs, replicas)
        elif new_replicas < replicas:
            total = sum(_replicas(rs) for rs in all_sets)
            room = replicas + surge - total
            if room > 0:
                self._scale(d, new_rs, min(replicas, new_replicas + room))
        new_rs = self.children.get(*key_of(new_rs)) or new_rs
        # reconcileOldReplicaSets
        old_live = [rs for rs in old_sets if _replicas(rs) > 0]
        if not old_live:
            return
        all_sets = [*old_sets, new_rs]
        min_available = replicas - unavailable
        all_pods = sum(_replicas(rs) for rs in all_sets)
        new_unavailable = _replicas(new_rs) - _status(new_rs, "availableReplicas")
        max_scaled_down = all_pods - min_available - new_unavailable
        if max_scaled_down <= 0:
            return
        # cleanupUnhealthyReplicas: scale down old sets' unavailable pods first.
        for rs in sorted(
            old_live, key=lambda r: parse_rfc3339(meta(r).get("creationTimestamp")) or 0
        ):
            if max_scaled_down <= 0:
                break
            unhealthy = _replicas(rs) - _status(rs, "availableReplicas")
            if unhealthy <= 0:
                continue
            down = min(max_scaled_down, unhealthy)
            self._scale(d, rs, _replicas(rs) - down)
            max_scaled_down -= down
        old_live = [self.children.get(*key_of(rs)) or rs for rs in old_live]
        all_sets = [*old_live, new_rs]
        available = sum(_status(rs, "availableReplicas") for rs in all_sets)
        if available <= min_available:
            return
        budget = available - min_available
        for rs in sorted(
            old_live, key=lambda r: parse_rfc3339(meta(r).get("creationTimestamp")) or 0
        ):
            if budget <= 0:
                break
            down = min(_replicas(rs), budget)
            if down <= 0:
                continue
            self._scale(d, rs, _replicas(rs) - down)
            budget -= down

    def _cleanup(self, d: JSON) -> None:
        limit = int((d.get("spec") or {}).get("revisionHistoryLimit", 10))
        sets = self._owned(d)
        want_name = (
            f"{meta(d)['name']}-{template_hash((d.get('spec') or {}).get('template') or {})}"
        )
        idle = sorted(
            (
                rs
                for rs in sets
                if meta(rs)["name"] != want_name
                and _replicas(rs) == 0
                and _status(rs, "replicas") == 0
                and not meta(rs).get("deletionTimestamp")
            ),
            key=_revision,
        )
        for rs in idle[: max(0, len(idle) - limit)]:
            try:
                self.store.delete("replicasets", *key_of(rs))
            except ApiError as exc:
                if exc.code != 404:
                    raise

    def _sync_status(
        self, d: JSON, new_rs: JSON | None, old_sets: list[JSON], *, created: bool = False
    ) -> None:
        spec = d.get("spec") or {}
        all_sets = [*old_sets, *([new_rs] if new_rs is not None else [])]
        replicas = int(spec.get("replicas", 1))
        total = sum(_status(rs, "replicas") for rs in all_sets)
        available = sum(_status(rs, "availableReplicas") for rs in all_sets)
        updated = _status(new_rs, "replicas") if new_rs is not None else 0
        ru = (spec.get("strategy") or {}).get("rollingUpdate") or {}
        max_unavailable = scaled_value(ru.get("maxUnavailable", "25%"), replicas, round_up=False)
        if (spec.get("strategy") or {}).get("type") == "Recreate":
            max_unavailable = 0
        status: JSON = {
            "observedGeneration": meta(d).get("generation", 1),
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": sum(_status(rs, "readyReplicas") for rs in all_sets),
            "availableReplicas": available,
            "unavailableReplicas": max(0, total - available),
        }
        status = {k: v for k, v in status.items() if v or k == "observedGeneration"}
        live_old = d.get("status") or {}
        conditions = [dict(c) for c in live_old.get("conditions") or []]
        now = now_rfc3339()

        def set_cond(ctype: str, value: str, reason: str, message: str) -> None:
            for c in conditions:
                if c.get("type") == ctype:
                    if c.get("status") != value:
                        c["lastTransitionTime"] = now
                    if (c.get("status"), c.get("reason"), c.get("message")) != (
                        value,
                        reason,
                        message,
                    ):
                        c["lastUpdateTime"] = now
                    c.update(status=value, reason=reason, message=message)
                    return
            conditions.append(
                {
                    "type": ctype,
                    "status": value,
                    "reason": reason,
                    "message": message,
                    "lastTransitionTime": now,
                    "lastUpdateTime": now,
                }
            )

        if available >= replicas - max_unavailable:
            set_cond(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        else:
            set_cond(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        if new_rs is not None:
            self._progressing(
                d, live_old, status, conditions, set_cond, meta(new_rs)["name"], created
            )
        status["conditions"] = conditions
        if live_old == status:
            return
        self._write_status(key_of(d), status)

    def _progressing(
        self,
        d: JSON,
        old: JSON,
        new: JSON,
        conditions: list[JSON],
        set_cond: Callable[[str, str, str, str], None],
        rs_name: str,
        created: bool,
    ) -> None:
        """The Progressing condition, as progress.go's syncRolloutStatus keeps it.

        Complete: True, NewReplicaSetAvailable (then left alone while nothing is rolled out).
        Any progress (more updated, ready or available replicas, fewer old ones) moves its
        lastUpdateTime on; none for progressDeadlineSeconds (default 600) since then: False,
        ProgressDeadlineExceeded. The deployment is looked at again when the deadline falls.
        A new ReplicaSet starts the clock: NewReplicaSetCreated (sync.go getNewReplicaSet).
        """
        spec = d.get("spec") or {}
        deadline = spec.get("progressDeadlineSeconds", 600)
        if deadline is None or deadline == _NO_DEADLINE:
            conditions[:] = [c for c in conditions if c.get("type") != "Progressing"]
            return
        replicas = int(spec.get("replicas", 1))
        current = next((c for c in conditions if c.get("type") == "Progressing"), None)

        def count(status: JSON, name: str) -> int:
            return int(status.get(name) or 0)

        total, updated = count(new, "replicas"), count(new, "updatedReplicas")
        if not created and total == updated and current and current.get("reason") == _COMPLETE:
            return
        if (
            updated == replicas
            and total == replicas
            and count(new, "availableReplicas") == replicas
        ):
            set_cond(
                "Progressing",
                "True",
                _COMPLETE,
                f'ReplicaSet "{rs_name}" has successfully progressed.',
            )
            return
        progressed = (
            updated > count(old, "updatedReplicas")
            or total - updated < count(old, "replicas") - count(old, "updatedReplicas")
            or count(new, "readyReplicas") > count(old, "readyReplicas")
            or count(new, "availableReplicas") > count(old, "availableReplicas")
        )
        if created or current is None or progressed:
            reason, message = (
                ("NewReplicaSetCreated", f'Created new replica set "{rs_name}"')
                if created
                else ("ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')
            )
            set_cond("Progressing", "True", reason, message)
            for c in conditions:
                if c.get("type") == "Progressing":
                    c["lastUpdateTime"] = now_rfc3339()  # every progress, same reason or not
            self.queue.add_after(key_of(d), float(deadline) + 0.05)
            return
        if current.get("reason") == _TIMED_OUT:
            return
        since = parse_rfc3339(current.get("lastUpdateTime")) or time.time()
        left = since + float(deadline) - time.time()
        if left < 0:
            set_cond(
                "Progressing",
                "False",
                _TIMED_OUT,
                f'ReplicaSet "{rs_name}" has timed out progressing.',
            )
        else:
            self.queue.add_after(key_of(d), left + 0.05)


def _created_at(obj: JSON) -> float:
    return parse_rfc3339(meta(obj).get("creationTimestamp")) or 0.0
