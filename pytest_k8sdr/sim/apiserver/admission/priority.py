"""Priority admission (plugin/pkg/admission/priority/admission.go).

A new pod's spec.priorityClassName resolves to spec.priority (and its preemptionPolicy):
the two system classes, then the PriorityClasses stored; with no name, the global default
class (the lowest-valued one if several) or priority 0. An unknown class is 403, as is a
spec.priority or preemptionPolicy that differs from the class's. A PriorityClass may not
become a second global default.
"""

from __future__ import annotations

from pytest_k8sdr.sim.apimachinery.errors import forbidden
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.apiserver.admission import MutatingPlugin, Objects

__all__ = ["NAME", "pod_plugin", "priority_class_plugin"]

NAME = "Priority"
_GROUP = "scheduling.k8s.io"


def _default_class(store: Objects, but: str = "") -> JSON | None:
    defaults = [
        pc
        for pc in store.iter_objects("priorityclasses")
        if pc.get("globalDefault") and pc["metadata"]["name"] != but
    ]
    return min(defaults, key=lambda pc: int(pc.get("value", 0)), default=None)


def pod_plugin(store: Objects) -> MutatingPlugin:
    """Resolve a new pod's priority from its class."""

    def admit(operation: str, pod: JSON, old: JSON | None) -> None:
        if operation != "CREATE":
            return
        spec = pod.setdefault("spec", {})
        meta = pod.get("metadata") or {}
        name = spec.get("priorityClassName") or ""
        if name:
            klass = store.find("priorityclasses", None, name)
            if klass is None:
                raise forbidden(
                    "pods", meta.get("name", ""), f"no PriorityClass with name {name} was found"
                )
        else:
            klass = _default_class(store)
        value = int(klass.get("value", 0)) if klass is not None else 0
        given = spec.get("priority")
        if given is not None and given != value:
            raise forbidden(
                "pods",
                meta.get("name", ""),
                f"the integer value of priority ({given}) must not be provided in pod spec; "
                f"priority admission controller computed {value} from the given PriorityClass "
                "name",
            )
        spec["priority"] = value
        policy = "PreemptLowerPriority"
        if klass is not None:
            spec["priorityClassName"] = klass["metadata"]["name"]
            policy = klass.get("preemptionPolicy") or policy
        given_policy = spec.get("preemptionPolicy")
        if given_policy is not None and given_policy != policy:
            raise forbidden(
                "pods",
                meta.get("name", ""),
                f"the string value of PreemptionPolicy ({given_policy}) must not be provided in "
                f"pod spec; priority admission controller computed {policy} from the given "
                "PriorityClass name",
            )
        spec["preemptionPolicy"] = policy

    return admit


def priority_class_plugin(store: Objects) -> MutatingPlugin:
    """Refuse a second global default class."""

    def admit(operation: str, pc: JSON, old: JSON | None) -> None:
        if not pc.get("globalDefault"):
            return
        name = (pc.get("metadata") or {}).get("name", "")
        other = _default_class(store, but=name)
        if other is not None:
            raise forbidden(
                "priorityclasses",
                name,
                f"PriorityClass {other['metadata']['name']} is already marked as default. Only "
                "one default can exist",
                _GROUP,
            )

    return admit
