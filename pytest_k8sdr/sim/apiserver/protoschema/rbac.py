"""k8s.io/api rbac/v1."""

from __future__ import annotations

from pytest_k8sdr.sim.apiserver.protoschema.types import Kinds, Messages

_V1 = "rbac.authorization.k8s.io/v1"

MESSAGES: Messages = {
    "rbac.Role": {1: ("metadata", "meta.ObjectMeta"), 2: ("rules", "[]rbac.PolicyRule")},
    "rbac.ClusterRole": {
        1: ("metadata", "meta.ObjectMeta"),
        2: ("rules", "[]rbac.PolicyRule"),
        3: ("aggregationRule", "rbac.AggregationRule"),
    },
    "rbac.PolicyRule": {
        1: ("verbs", "[]string"),
        2: ("apiGroups", "[]string"),
        3: ("resources", "[]string"),
        4: ("resourceNames", "[]string"),
        5: ("nonResourceURLs", "[]string"),
    },
    "rbac.AggregationRule": {1: ("clusterRoleSelectors", "[]meta.LabelSelector")},
    "rbac.RoleBinding": {
        1: ("metadata", "meta.ObjectMeta"),
        2: ("subjects", "[]rbac.Subject"),
        3: ("roleRef", "rbac.RoleRef"),
    },
    "rbac.Subject": {
        1: ("kind", "string"),
        2: ("apiGroup", "string"),
        3: ("name", "string"),
        4: ("namespace", "string"),
    },
    "rbac.RoleRef": {1: ("apiGroup", "string"), 2: ("kind", "string"), 3: ("name", "string")},
}

KINDS: Kinds = {
    (_V1, "Role"): "rbac.Role",
    (_V1, "ClusterRole"): "rbac.ClusterRole",
    (_V1, "RoleBinding"): "rbac.RoleBinding",
    (_V1, "ClusterRoleBinding"): "rbac.RoleBinding",
}
