"""The resource types the simulated API server serves, and what each supports."""

from __future__ import annotations

from pytest_k8sdr.sim.store import ResourceType

_STATUS = frozenset({"status"})
_SCALE = frozenset({"status", "scale"})

RESOURCES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "namespaces", "Namespace", False, ("ns",), _STATUS),
    ResourceType("", "v1", "nodes", "Node", False, ("no",), _STATUS),
    ResourceType(
        "", "v1", "pods", "Pod", True, ("po",), frozenset({"status", "eviction", "binding"})
    ),
    ResourceType("", "v1", "services", "Service", True, ("svc",), _STATUS),
    ResourceType("", "v1", "endpoints", "Endpoints", True, ("ep",)),
    ResourceType("", "v1", "events", "Event", True, ("ev",)),
    ResourceType("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    ResourceType("", "v1", "secrets", "Secret", True),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",)),
    ResourceType("apps", "v1", "deployments", "Deployment", True, ("deploy",), _SCALE),
    ResourceType("apps", "v1", "replicasets", "ReplicaSet", True, ("rs",), _SCALE),
    ResourceType("apps", "v1", "statefulsets", "StatefulSet", True, ("sts",), _SCALE),
    ResourceType("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), _STATUS),
    ResourceType("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True),
    ResourceType(
        "policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ("pdb",), _STATUS
    ),
)

BY_PLURAL: dict[str, ResourceType] = {r.plural: r for r in RESOURCES}
BY_GVR: dict[tuple[str, str, str], ResourceType] = {
    (r.group, r.version, r.plural): r for r in RESOURCES
}
GROUPS: dict[str, list[ResourceType]] = {}
for _r in RESOURCES:
    GROUPS.setdefault(_r.group, []).append(_r)

# Field selectors each type accepts beyond metadata.name/metadata.namespace, as upstream's
# registries declare them (pkg/registry/core/pod/strategy.go PodToSelectableFields,
# pkg/registry/core/node/strategy.go, .../namespace, .../event, .../secret, .../service,
# pkg/registry/apps/replicaset/strategy.go).
FIELD_SELECTORS: dict[str, frozenset[str]] = {
    "pods": frozenset(
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
    ),
    "nodes": frozenset({"spec.unschedulable"}),
    "namespaces": frozenset({"status.phase"}),
    "events": frozenset(
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
    ),
    "secrets": frozenset({"type"}),
    "replicasets": frozenset({"status.replicas"}),
}

# Strategic-merge keys by field name, from the patchMergeKey tags of k8s.io/api
# (core/v1/types.go, apps/v1/types.go, meta/v1/types.go). Lists not named here are
# atomic and replaced whole: NodeSpec.Taints and PodSpec.Tolerations carry no
# patchStrategy upstream, so `kubectl taint` sends the full list and expects a replace.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "addresses": "type",
    "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "podIPs": "ip",
    "hostIPs": "ip",
}
# `ports` merges by containerPort in containers and by port in services.
PORT_MERGE_KEYS = ("containerPort", "port")
# Primitive lists with patchStrategy merge (treated as sets).
MERGE_PRIMITIVE_LISTS = frozenset({"finalizers"})


def lookup(plural_or_name: str) -> ResourceType | None:
    """The type for a plural, kind (any case) or short name."""
    name = plural_or_name.lower()
    if name in BY_PLURAL:
        return BY_PLURAL[name]
    for r in RESOURCES:
        if name == r.kind.lower() or name in r.short_names:
            return r
    return None
