"""Protobuf schema tables: field numbers, JSON names and types of the served kinds' messages.

One module per API group, each in the same form: `MESSAGES` maps a message name
("<group>.<Message>") to `{field number: (json name, type)}`, and `KINDS` maps
(apiVersion, kind) to the message a request body of that kind holds. The numbers are those
of k8s.io/api's and k8s.io/apimachinery's generated.proto files. A new group is a module
and one line in `GROUPS`.

Types: "string", "bytes" (base64 in JSON), "int" (any varint integer), "bool", "double",
"quantity" (resource.Quantity), "intorstr" (intstr.IntOrString), "time" (metav1.Time and
MicroTime), "duration" (metav1.Duration), "raw" (runtime.RawExtension: embedded JSON), a
message name, "[]<type>" for a repeated field, "map:<type>" for map<string, type>, and
"inline:<message>" for an embedded struct whose fields JSON shows in the parent.
A trailing "!" keeps a zero value (a pointer or a field without omitempty upstream);
otherwise zero scalars are left out, as Go's JSON encoding leaves them out.
"""

from __future__ import annotations

from pytest_k8sdr.sim.apiserver.protoschema import (
    apps,
    authentication,
    authorization,
    autoscaling,
    batch,
    certificates,
    core,
    meta,
    networking,
    policy,
    rbac,
    scheduling,
    storage,
)
from pytest_k8sdr.sim.apiserver.protoschema.types import Kinds, Message, Messages

__all__ = ["KINDS", "MESSAGES", "Kinds", "Message", "Messages"]

GROUPS = (
    meta,
    core,
    apps,
    batch,
    policy,
    rbac,
    certificates,
    networking,
    scheduling,
    authentication,
    authorization,
    autoscaling,
    storage,
)

MESSAGES: Messages = {name: msg for g in GROUPS for name, msg in g.MESSAGES.items()}
KINDS: Kinds = {key: name for g in GROUPS for key, name in g.KINDS.items()}
