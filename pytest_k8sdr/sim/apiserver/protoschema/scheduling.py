"""k8s.io/api scheduling/v1."""

from __future__ import annotations

from pytest_k8sdr.sim.apiserver.protoschema.types import Kinds, Messages

MESSAGES: Messages = {
    "scheduling.PriorityClass": {
        1: ("metadata", "meta.ObjectMeta"),
        2: ("value", "int!"),
        3: ("globalDefault", "bool"),
        4: ("description", "string"),
        5: ("preemptionPolicy", "string"),
    },
}

KINDS: Kinds = {("scheduling.k8s.io/v1", "PriorityClass"): "scheduling.PriorityClass"}
