"""The Pod strategy and the pods/binding subresource (pkg/registry/core/pod)."""

from __future__ import annotations

from pytest_k8sdr.sim.apimachinery.clock import now_rfc3339
from pytest_k8sdr.sim.apimachinery.errors import ApiError, conflict
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.apiserver.registry.podspec import default_pod_spec, validate_pod_spec
from pytest_k8sdr.sim.apiserver.registry.strategy import Cause, Strategy, cause
from pytest_k8sdr.sim.apiserver.storage import Entry, Storage

__all__ = ["PodStrategy", "bind_pod", "qos_class"]

# Pod spec fields an update may change (pkg/apis/core/validation/validation.go
# ValidatePodUpdate): container images, activeDeadlineSeconds, tolerations (additions),
# terminationGracePeriodSeconds (only to shorten a deleted pod's; we accept any).
_MUTABLE_POD_SPEC = ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")


class PodStrategy(Strategy):
    """Pods: Pending with a QoS class on create, PodSpec defaults, graceful deletion."""

    def prepare_for_create(self, obj: JSON) -> None:
        """A new pod is Pending."""
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(obj)}

    def default(self, obj: JSON) -> None:
        """PodSpec defaults (priority and preemptionPolicy are Priority admission's)."""
        default_pod_spec(obj.setdefault("spec", {}))

    def validate(self, obj: JSON, old: JSON | None) -> list[Cause]:
        """Containers and images; an update may change only the mutable fields."""
        causes = validate_pod_spec(obj.get("spec") or {}, "spec")
        if old is not None:
            causes += _validate_pod_update(obj, old)
        return causes

    def grace_period(self, obj: JSON, requested: int | None) -> int:
        """pkg/registry/core/pod/strategy.go CheckGracefulDelete."""
        spec = obj.get("spec") or {}
        phase = (obj.get("status") or {}).get("phase")
        if requested is None:
            grace = spec.get("terminationGracePeriodSeconds")
            grace = 30 if grace is None else int(grace)
        else:
            grace = int(requested)
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            grace = 0
        if grace < 0:
            grace = 1
        return grace


def qos_class(pod: JSON) -> str:
    """Guaranteed, Burstable or BestEffort (pkg/apis/core/helper/qos)."""
    containers = (pod.get("spec") or {}).get("containers") or []
    requests = limits = False
    guaranteed = bool(containers)
    for c in containers:
        res = (c.get("resources") or {}) if isinstance(c, dict) else {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        requests = requests or bool(req)
        limits = limits or bool(lim)
        missing = not lim or any(k not in lim for k in ("cpu", "memory"))
        if missing or (req and any(req.get(k, lim[k]) != lim[k] for k in lim)):
            guaranteed = False
    if guaranteed:
        return "Guaranteed"
    return "Burstable" if requests or limits else "BestEffort"


def _strip_mutable(spec: JSON) -> JSON:
    out = {k: v for k, v in spec.items() if k not in _MUTABLE_POD_SPEC}
    for key in ("containers", "initContainers"):
        if key in out:
            out[key] = [
                {ck: cv for ck, cv in c.items() if ck != "image"} if isinstance(c, dict) else c
                for c in out[key]
            ]
    return out


def _validate_pod_update(obj: JSON, old: JSON) -> list[Cause]:
    new_spec = dict(obj.get("spec") or {})
    old_spec = dict(old.get("spec") or {})
    # Binding an unbound pod by update is what the simulator's in-process scheduler may do;
    # upstream only allows it through pods/binding. Accepting it is a documented leniency.
    if not old_spec.get("nodeName"):
        new_spec.pop("nodeName", None)
        old_spec.pop("nodeName", None)
    if _strip_mutable(new_spec) != _strip_mutable(old_spec):
        return [
            cause(
                "spec",
                "Forbidden: pod updates may not change fields other than "
                "`spec.containers[*].image`,"
                "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
                "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
                "(allow it to be set to 1 if it was previously negative)",
                "FieldValueForbidden",
            )
        ]
    return []


def bind_pod(storage: Storage, namespace: str, name: str, binding: JSON) -> Entry:
    """pods/binding: set spec.nodeName and PodScheduled=True; 409 if already bound."""
    target = (binding.get("target") or {}).get("name")
    if not target:
        raise ApiError(
            422,
            "Invalid",
            "binding target name is required",
            details={
                "name": name,
                "kind": "Binding",
                "causes": [cause("target.name", "Required value", "FieldValueRequired")],
            },
        )
    old = storage.entry("pods", namespace, name)
    new = old.decode()
    bmeta = binding.get("metadata") or {}
    if bmeta.get("uid") and bmeta["uid"] != new["metadata"]["uid"]:
        raise conflict("pods", name, "Precondition failed: UID in precondition does not match")
    # pkg/registry/core/pod/storage/storage.go assignPod: already bound or deleting is 409.
    if (new.get("spec") or {}).get("nodeName"):
        node = new["spec"]["nodeName"]
        raise conflict("pods", name, f'pod {name} is already assigned to node "{node}"')
    if new["metadata"].get("deletionTimestamp"):
        raise conflict("pods", name, f"pod {name} is being deleted, cannot be assigned to a host")
    new["spec"]["nodeName"] = target
    status = new.setdefault("status", {})
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
    conditions.append(
        {
            "type": "PodScheduled",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": now_rfc3339(),
        }
    )
    status["conditions"] = conditions
    ns = new["metadata"]["namespace"]
    return storage.commit("pods", "MODIFIED", ns, name, new, old)
