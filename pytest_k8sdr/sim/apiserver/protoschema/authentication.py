"""k8s.io/api authentication/v1: TokenRequest (serviceaccounts/token), SelfSubjectReview."""

from __future__ import annotations

from pytest_k8sdr.sim.apiserver.protoschema.types import Kinds, Messages

MESSAGES: Messages = {
    "authentication.TokenRequest": {
        1: ("metadata", "meta.ObjectMeta"),
        2: ("spec", "authentication.TokenRequestSpec"),
    },
    "authentication.TokenRequestSpec": {
        1: ("audiences", "[]string"),
        3: ("boundObjectRef", "authentication.BoundObjectReference"),
        4: ("expirationSeconds", "int!"),
    },
    "authentication.BoundObjectReference": {
        1: ("kind", "string"),
        2: ("apiVersion", "string"),
        3: ("name", "string"),
        4: ("uid", "string"),
    },
    "authentication.SelfSubjectReview": {1: ("metadata", "meta.ObjectMeta")},
}

KINDS: Kinds = {
    ("authentication.k8s.io/v1", "TokenRequest"): "authentication.TokenRequest",
    ("authentication.k8s.io/v1", "SelfSubjectReview"): "authentication.SelfSubjectReview",
}
