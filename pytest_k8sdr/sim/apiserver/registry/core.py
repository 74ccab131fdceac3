"""The core ("") group's kinds: one declaration each, with its strategy (pkg/registry/core)."""

from __future__ import annotations

from typing import ClassVar

from pytest_k8sdr.sim.apimachinery.selectors import selector_matches
from pytest_k8sdr.sim.apimachinery.types import JSON, ResourceType
from pytest_k8sdr.sim.apiserver.registry import events
from pytest_k8sdr.sim.apiserver.registry.pods import PodStrategy
from pytest_k8sdr.sim.apiserver.registry.podspec import (
    default_pod_spec,
    default_template,
    validate_pod_spec,
)
from pytest_k8sdr.sim.apiserver.registry.quota import LimitRangeStrategy, ResourceQuotaStrategy
from pytest_k8sdr.sim.apiserver.registry.serviceallocator import ServiceAllocator
from pytest_k8sdr.sim.apiserver.registry.strategy import (
    Cause,
    ResetStatus,
    Resource,
    Strategy,
    cause,
)
from pytest_k8sdr.sim.apiserver.registry.volumes import (
    PersistentVolumeClaimStrategy,
    PersistentVolumeStrategy,
)

__all__ = ["RESOURCES"]

STATUS = frozenset({"status"})


class NamespaceStrategy(Strategy):
    """Namespaces: Active on create, the kubernetes finalizer, the metadata.name label."""

    name_rule = "label"

    def prepare_for_create(self, obj: JSON) -> None:
        """A new namespace is Active."""
        obj["status"] = {"phase": "Active"}

    def default(self, obj: JSON) -> None:
        """spec.finalizers and the kubernetes.io/metadata.name label."""
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        name = obj.get("metadata", {}).get("name", "")
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name


class ServiceStrategy(ResetStatus):
    """Services: defaults, port validation, clusterIP and nodePort allocation."""

    name_rule = "dns1035"
    empty_status: ClassVar[JSON] = {"loadBalancer": {}}

    def __init__(self) -> None:
        self.allocator = ServiceAllocator()

    def default(self, obj: JSON) -> None:
        """pkg/apis/core/v1/defaults.go SetDefaults_Service."""
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        if spec["type"] in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                if "port" in port:
                    port.setdefault("targetPort", port["port"])

    def validate(self, obj: JSON, old: JSON | None) -> list[Cause]:
        """Every port within 1-65535."""
        causes: list[Cause] = []
        for n, port in enumerate((obj.get("spec") or {}).get("ports") or []):
            p = port.get("port") if isinstance(port, dict) else None
            if not isinstance(p, int) or not 0 < p < 65536:
                causes.append(
                    cause(
                        f"spec.ports[{n}].port",
                        f"Invalid value: {p}: must be between 1 and 65535, inclusive",
                    )
                )
        return causes

    def allocate(self, obj: JSON, old: JSON | None) -> None:
        """ClusterIP and nodePorts."""
        self.allocator.allocate(obj, old)

    def restore(self, obj: JSON) -> None:
        """The stored Service's clusterIP and nodePorts are taken."""
        self.allocator.reserve(obj)

    def release(self, obj: JSON) -> None:
        """Free them again."""
        self.allocator.release(obj)


class NoGeneration(Strategy):
    """Kinds without a spec upstream: no metadata.generation."""

    track_generation = False


class SecretStrategy(NoGeneration):
    """Secrets default to type Opaque."""

    def default(self, obj: JSON) -> None:
        """type: Opaque."""
        obj.setdefault("type", "Opaque")


class ReplicationControllerStrategy(ResetStatus):
    """SetDefaults_ReplicationController; ValidateReplicationController.

    No controller runs them in the simulator: they are stored, scaled and watched.
    """

    empty_status: ClassVar[JSON] = {"replicas": 0}

    def default(self, obj: JSON) -> None:
        """Selector and labels from the template's labels when empty; replicas 1."""
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        template = spec.get("template")
        if isinstance(template, dict):
            labels = (template.get("metadata") or {}).get("labels") or {}
            if not spec.get("selector"):
                spec["selector"] = dict(labels)
            meta = obj.setdefault("metadata", {})
            if not meta.get("labels") and labels:
                meta["labels"] = dict(labels)
            default_template(obj)

    def validate(self, obj: JSON, old: JSON | None) -> list[Cause]:
        """A template whose labels match the selector, replicas >= 0, the pod spec."""
        spec = obj.get("spec") or {}
        template = spec.get("template")
        causes: list[Cause] = []
        replicas = spec.get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            causes.append(
                cause(
                    "spec.replicas",
                    f"Invalid value: {replicas}: must be greater than or equal to 0",
                )
            )
        if not isinstance(template, dict):
            return [*causes, cause("spec.template", "Required value", "FieldValueRequired")]
        selector = spec.get("selector") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        if not selector:
            causes.append(cause("spec.selector", "Required value", "FieldValueRequired"))
        elif not selector_matches({"matchLabels": selector}, labels):
            causes.append(
                cause(
                    "spec.template.metadata.labels",
                    f"Invalid value: {labels}: `selector` does not match template `labels`",
                )
            )
        return causes + validate_pod_spec(template.get("spec") or {}, "spec.template.spec")


class PodTemplateStrategy(Strategy):
    """PodTemplates: the template's pod spec defaulted and validated as a pod's."""

    track_generation = False

    def default(self, obj: JSON) -> None:
        """The pod spec's defaults."""
        template = obj.setdefault("template", {})
        if isinstance(template, dict):
            default_pod_spec(template.setdefault("spec", {}))

    def validate(self, obj: JSON, old: JSON | None) -> list[Cause]:
        """The template's pod spec."""
        return validate_pod_spec((obj.get("template") or {}).get("spec") or {}, "template.spec")


# Field selectors as upstream's registries declare them (pkg/registry/core/pod/strategy.go
# PodToSelectableFields, pkg/registry/core/node/strategy.go, .../namespace, .../event,
# .../secret).
_POD_FIELDS = frozenset(
    {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.podIPs",
        "status.nominatedNodeName",
    }
)
_EVENT_FIELDS = frozenset(
    {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    }
)

RESOURCES = (
    Resource(
        ResourceType(
            "", "v1", "namespaces", "Namespace", False, ("ns",), STATUS, frozenset({"status.phase"})
        ),
        NamespaceStrategy,
    ),
    Resource(
        ResourceType(
            "", "v1", "nodes", "Node", False, ("no",), STATUS, frozenset({"spec.unschedulable"})
        )
    ),
    Resource(
        ResourceType(
            "",
            "v1",
            "pods",
            "Pod",
            True,
            ("po",),
            frozenset({"status", "eviction", "binding"}),
            _POD_FIELDS,
        ),
        PodStrategy,
    ),
    Resource(
        ResourceType("", "v1", "services", "Service", True, ("svc",), STATUS), ServiceStrategy
    ),
    Resource(ResourceType("", "v1", "endpoints", "Endpoints", True, ("ep",)), NoGeneration),
    Resource(
        ResourceType("", "v1", "events", "Event", True, ("ev",), selectable_fields=_EVENT_FIELDS),
        NoGeneration,
        versions=(events.VERSION,),
    ),
    Resource(ResourceType("", "v1", "configmaps", "ConfigMap", True, ("cm",)), NoGeneration),
    Resource(
        ResourceType("", "v1", "secrets", "Secret", True, selectable_fields=frozenset({"type"})),
        SecretStrategy,
    ),
    Resource(
        ResourceType(
            "", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",), frozenset({"token"})
        ),
        NoGeneration,
    ),
    Resource(
        ResourceType("", "v1", "persistentvolumes", "PersistentVolume", False, ("pv",), STATUS),
        PersistentVolumeStrategy,
    ),
    Resource(
        ResourceType(
            "", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",), STATUS
        ),
        PersistentVolumeClaimStrategy,
    ),
    Resource(
        ResourceType("", "v1", "resourcequotas", "ResourceQuota", True, ("quota",), STATUS),
        ResourceQuotaStrategy,
    ),
    Resource(
        ResourceType("", "v1", "limitranges", "LimitRange", True, ("limits",)), LimitRangeStrategy
    ),
    Resource(
        ResourceType(
            "",
            "v1",
            "replicationcontrollers",
            "ReplicationController",
            True,
            ("rc",),
            frozenset({"status", "scale"}),
        ),
        ReplicationControllerStrategy,
    ),
    Resource(ResourceType("", "v1", "podtemplates", "PodTemplate", True), PodTemplateStrategy),
)
