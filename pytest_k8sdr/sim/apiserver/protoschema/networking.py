"""k8s.io/api networking/v1."""

from __future__ import annotations

from pytest_k8sdr.sim.apiserver.protoschema.types import Kinds, Messages

_V1 = "networking.k8s.io/v1"

MESSAGES: Messages = {
    "networking.Ingress": {
        1: ("metadata", "meta.ObjectMeta"),
        2: ("spec", "networking.IngressSpec"),
    },
    "networking.IngressSpec": {
        1: ("defaultBackend", "networking.IngressBackend"),
        2: ("tls", "[]networking.IngressTLS"),
        3: ("rules", "[]networking.IngressRule"),
        4: ("ingressClassName", "string"),
    },
    "networking.IngressTLS": {1: ("hosts", "[]string"), 2: ("secretName", "string")},
    "networking.IngressRule": {
        1: ("host", "string"),
        2: ("ingressRuleValue", "inline:networking.IngressRuleValue"),
    },
    "networking.IngressRuleValue": {1: ("http", "networking.HTTPIngressRuleValue")},
    "networking.HTTPIngressRuleValue": {1: ("paths", "[]networking.HTTPIngressPath")},
    "networking.HTTPIngressPath": {
        1: ("path", "string"),
        2: ("backend", "networking.IngressBackend"),
        3: ("pathType", "string"),
    },
    "networking.IngressBackend": {
        3: ("resource", "networking.TypedLocalObjectReference"),
        4: ("service", "networking.IngressServiceBackend"),
    },
    "networking.TypedLocalObjectReference": {
        1: ("apiGroup", "string"),
        2: ("kind", "string"),
        3: ("name", "string"),
    },
    "networking.IngressServiceBackend": {
        1: ("name", "string"),
        2: ("port", "networking.ServiceBackendPort"),
    },
    "networking.ServiceBackendPort": {1: ("name", "string"), 2: ("number", "int")},
}

KINDS: Kinds = {(_V1, "Ingress"): "networking.Ingress"}
