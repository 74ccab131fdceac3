"""k8s.io/apimachinery: meta/v1 (ObjectMeta, LabelSelector, DeleteOptions, ...)."""

from __future__ import annotations

from pytest_k8sdr.sim.apiserver.protoschema.types import Kinds, Messages

MESSAGES: Messages = {
    "meta.ObjectMeta": {
        1: ("name", "string"),
        2: ("generateName", "string"),
        3: ("namespace", "string"),
        5: ("uid", "string"),
        6: ("resourceVersion", "string"),
        7: ("generation", "int"),
        8: ("creationTimestamp", "time"),
        9: ("deletionTimestamp", "time"),
        10: ("deletionGracePeriodSeconds", "int!"),
        11: ("labels", "map:string"),
        12: ("annotations", "map:string"),
        13: ("ownerReferences", "[]meta.OwnerReference"),
        14: ("finalizers", "[]string"),
    },
    "meta.OwnerReference": {
        1: ("kind", "string"),
        3: ("name", "string"),
        4: ("uid", "string"),
        5: ("apiVersion", "string"),
        6: ("controller", "bool!"),
        7: ("blockOwnerDeletion", "bool!"),
    },
    "meta.LabelSelector": {
        1: ("matchLabels", "map:string"),
        2: ("matchExpressions", "[]meta.LabelSelectorRequirement"),
    },
    "meta.LabelSelectorRequirement": {
        1: ("key", "string"),
        2: ("operator", "string"),
        3: ("values", "[]string"),
    },
    "meta.Preconditions": {1: ("uid", "string"), 2: ("resourceVersion", "string")},
    "meta.DeleteOptions": {
        1: ("gracePeriodSeconds", "int!"),
        2: ("preconditions", "meta.Preconditions"),
        3: ("orphanDependents", "bool!"),
        4: ("propagationPolicy", "string"),
        5: ("dryRun", "[]string"),
        6: ("ignoreStoreReadErrorWithClusterBreakingPotential", "bool!"),
    },
    "meta.Condition": {
        1: ("type", "string"),
        2: ("status", "string"),
        3: ("observedGeneration", "int"),
        4: ("lastTransitionTime", "time"),
        5: ("reason", "string"),
        6: ("message", "string"),
    },
}

KINDS: Kinds = {
    ("meta.k8s.io/v1", "DeleteOptions"): "meta.DeleteOptions",
    ("v1", "DeleteOptions"): "meta.DeleteOptions",
}
