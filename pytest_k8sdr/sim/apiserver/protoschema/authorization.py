"""k8s.io/api authorization/v1: the self reviews kubectl auth can-i sends."""

from __future__ import annotations

from pytest_k8sdr.sim.apiserver.protoschema.types import Kinds, Messages

_V1 = "authorization.k8s.io/v1"

MESSAGES: Messages = {
    "authorization.SelfSubjectAccessReview": {
        1: ("metadata", "meta.ObjectMeta"),
        2: ("spec", "authorization.SelfSubjectAccessReviewSpec"),
    },
    "authorization.SelfSubjectAccessReviewSpec": {
        1: ("resourceAttributes", "authorization.ResourceAttributes"),
        2: ("nonResourceAttributes", "authorization.NonResourceAttributes"),
    },
    "authorization.ResourceAttributes": {
        1: ("namespace", "string"),
        2: ("verb", "string"),
        3: ("group", "string"),
        4: ("version", "string"),
        5: ("resource", "string"),
        6: ("subresource", "string"),
        7: ("name", "string"),
    },
    "authorization.NonResourceAttributes": {1: ("path", "string"), 2: ("verb", "string")},
    "authorization.SelfSubjectRulesReview": {
        1: ("metadata", "meta.ObjectMeta"),
        2: ("spec", "authorization.SelfSubjectRulesReviewSpec"),
    },
    "authorization.SelfSubjectRulesReviewSpec": {1: ("namespace", "string")},
}

KINDS: Kinds = {
    (_V1, "SelfSubjectAccessReview"): "authorization.SelfSubjectAccessReview",
    (_V1, "SelfSubjectRulesReview"): "authorization.SelfSubjectRulesReview",
}
