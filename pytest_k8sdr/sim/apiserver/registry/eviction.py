"""The pods/eviction subresource (pkg/registry/core/pod/storage/eviction.go).

API-server logic, not a controller: it answers even when the disruption controller is off
(then PDB status is simply never refreshed). Terminal, Pending and terminating pods are
deleted without PDB checks; otherwise the one matching PDB must allow a disruption: none
left is 429 TooManyRequests with no retryAfterSeconds (so no Retry-After header), a PDB
whose status lags its generation is 429 with retryAfterSeconds 10, more than one PDB is 500.
Success records the pod in disruptedPods, adds DisruptionTarget and deletes the pod with the
request's deleteOptions; the answer is Status Success, code 201. With `dryRun: [All]` (the
deleteOptions' or the request's) every check runs and the same answer comes, but nothing is
written: no PDB decrement, no condition, no delete (eviction.go passes DryRun through).
"""

from __future__ import annotations

from typing import Any

from pytest_k8sdr.sim.apimachinery.clock import now_rfc3339
from pytest_k8sdr.sim.apimachinery.errors import ApiError, bad_request, too_many_requests
from pytest_k8sdr.sim.apimachinery.selectors import selector_is_empty, selector_matches
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.apiserver.registry.store import Store

# MaxDisruptedPodSize: a budget with this many unconfirmed evictions refuses more.
MAX_DISRUPTED_POD_SIZE = 2000


def _labels_match(selector: JSON | None, labels: dict[str, str]) -> bool:
    # eviction.go getPodDisruptionBudgets: a nil or empty selector matches nothing here.
    return not selector_is_empty(selector) and selector_matches(selector, labels)


def _is_ready(pod: JSON) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def _can_ignore_pdb(pod: JSON) -> bool:
    phase = (pod.get("status") or {}).get("phase") or "Pending"
    return phase in ("Succeeded", "Failed", "Pending") or bool(
        (pod.get("metadata") or {}).get("deletionTimestamp")
    )


def _forbidden(pdb_name: str, why: str) -> ApiError:
    return ApiError(
        403,
        "Forbidden",
        f'poddisruptionbudgets.policy "{pdb_name}" is forbidden: {why}',
        details={"name": pdb_name, "group": "policy", "kind": "poddisruptionbudgets"},
    )


class EvictionHandler:
    """POST pods/{name}/eviction against one Store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __call__(self, namespace: str | None, name: str, body: JSON) -> JSON:
        """Evict the pod or raise the ApiError upstream would answer with."""
        ns = namespace or ""
        body_name = (body.get("metadata") or {}).get("name")
        if body_name and body_name != name:
            raise bad_request("name in URL does not match name in Eviction object")
        options: JSON = dict(body.get("deleteOptions") or {})
        dry_run = options.get("dryRun") or []
        if dry_run not in ([], ["All"]):
            raise bad_request(f'dryRun: Unsupported value: {dry_run!r}: supported values: "All"')
        pod = self.store.get("pods", ns, name)
        if _can_ignore_pdb(pod):
            self._condition_and_delete(ns, name, options)
            return _success()
        pdbs = [
            pdb
            for pdb in self.store.list("poddisruptionbudgets", ns).get("items") or []
            if _labels_match(
                (pdb.get("spec") or {}).get("selector"),
                (pod.get("metadata") or {}).get("labels") or {},
            )
        ]
        if len(pdbs) > 1:
            message = (
                "This pod has more than one PodDisruptionBudget, which the eviction subresource "
                "does not support."
            )
            raise ApiError(
                500,
                "InternalError",
                f"Internal error occurred: {message}",
                details={"causes": [{"message": message}]},
            )
        if not pdbs:
            self._condition_and_delete(ns, name, options)
            return _success()
        pdb = pdbs[0]
        spec = pdb.get("spec") or {}
        status = pdb.get("status") or {}
        if not _is_ready(pod):
            # An unhealthy pod does not use budget when the PDB can spare it
            # (or with unhealthyPodEvictionPolicy AlwaysAllow); the delete then carries a
            # resourceVersion precondition so a pod turning ready meanwhile is not lost.
            policy = spec.get("unhealthyPodEvictionPolicy") or "IfHealthyBudget"
            current = int(status.get("currentHealthy") or 0)
            desired = int(status.get("desiredHealthy") or 0)
            if policy == "AlwaysAllow" or (current >= desired and desired > 0):
                preconditions = dict(options.get("preconditions") or {})
                preconditions.setdefault("resourceVersion", pod["metadata"]["resourceVersion"])
                options["preconditions"] = preconditions
                self._condition_and_delete(ns, name, options)
                return _success()
        self._check_and_decrement(ns, name, pdb, dry_run=bool(dry_run))
        self._condition_and_delete(ns, name, options)
        return _success()

    def _check_and_decrement(
        self, ns: str, pod_name: str, pdb: JSON, *, dry_run: bool = False
    ) -> None:
        meta = pdb.get("metadata") or {}
        pdb_name = str(meta.get("name"))
        status = dict(pdb.get("status") or {})
        if int(status.get("observedGeneration") or 0) < int(meta.get("generation") or 1):
            raise too_many_requests(
                "Cannot evict pod as it would violate the pod's disruption budget.",
                retry_after=10,
                causes=[
                    {
                        "type": "DisruptionBudget",
                        "message": f"The disruption budget {pdb_name} is still being "
                        "processed by the server.",
                    }
                ],
            )
        allowed = int(status.get("disruptionsAllowed") or 0)
        if allowed < 0:
            raise _forbidden(pdb_name, "pdb disruptions allowed is negative")
        disrupted: dict[str, Any] = dict(status.get("disruptedPods") or {})
        if len(disrupted) > MAX_DISRUPTED_POD_SIZE:
            raise _forbidden(
                pdb_name,
                "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
            )
        if allowed == 0:
            raise too_many_requests(
                "Cannot evict pod as it would violate the pod's disruption budget.",
                causes=[
                    {
                        "type": "DisruptionBudget",
                        "message": (
                            f"The disruption budget {pdb_name} needs "
                            f"{int(status.get('desiredHealthy') or 0)} healthy pods and has "
                            f"{int(status.get('currentHealthy') or 0)} currently"
                        ),
                    }
                ],
            )
        if dry_run:
            return
        status["disruptionsAllowed"] = allowed - 1
        if allowed - 1 == 0:
            conditions = [dict(c) for c in status.get("conditions") or []]
            for cond in conditions:
                if cond.get("type") == "DisruptionAllowed" and cond.get("status") != "False":
                    cond.update(
                        status="False", reason="InsufficientPods", lastTransitionTime=now_rfc3339()
                    )
            status["conditions"] = conditions
        disrupted[pod_name] = now_rfc3339()
        status["disruptedPods"] = disrupted
        pdb = dict(pdb)
        pdb["status"] = status
        # The PDB's resourceVersion guards against a concurrent eviction (409 on a stale one).
        self.store.update("poddisruptionbudgets", ns, pdb_name, pdb, subresource="status")

    def _condition_and_delete(self, ns: str, name: str, options: JSON) -> None:
        if options.get("dryRun"):
            # Only the delete's own checks (its preconditions) run.
            self.store.delete_entry(
                "pods", ns, name, preconditions=options.get("preconditions") or None, dry_run=True
            )
            return
        pod = self.store.get("pods", ns, name)
        status = pod.setdefault("status", {})
        conditions: list[JSON] = status.setdefault("conditions", [])
        wanted = {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "EvictionByEvictionAPI",
            "message": "Eviction API: evicting",
        }
        current = next((c for c in conditions if c.get("type") == "DisruptionTarget"), None)
        if current is None or any(current.get(k) != v for k, v in wanted.items()):
            if current is None:
                conditions.append(
                    {**wanted, "lastProbeTime": None, "lastTransitionTime": now_rfc3339()}
                )
            else:
                if current.get("status") != "True":
                    current["lastTransitionTime"] = now_rfc3339()
                current.update(wanted)
            preconditions = options.get("preconditions") or {}
            if preconditions.get("resourceVersion"):
                pod["metadata"]["resourceVersion"] = preconditions["resourceVersion"]
            self.store.update("pods", ns, name, pod, subresource="status")
            if preconditions.get("resourceVersion"):
                # Our own status write moved the version; the precondition guarded the read.
                preconditions = {k: v for k, v in preconditions.items() if k != "resourceVersion"}
                options = {**options, "preconditions": preconditions}
        grace = options.get("gracePeriodSeconds")
        self.store.delete(
            "pods",
            ns,
            name,
            grace_period_seconds=None if grace is None else int(grace),
            propagation_policy=options.get("propagationPolicy"),
            preconditions=options.get("preconditions") or None,
        )


def _success() -> JSON:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


def register(store: Store) -> None:
    """Serve pods/eviction from `store`."""
    store.register_subresource("pods", "eviction", EvictionHandler(store))
