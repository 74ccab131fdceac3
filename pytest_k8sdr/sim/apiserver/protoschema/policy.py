"""k8s.io/api policy/v1."""

from __future__ import annotations

from pytest_k8sdr.sim.apiserver.protoschema.types import Kinds, Messages

MESSAGES: Messages = {
    "policy.PodDisruptionBudget": {
        1: ("metadata", "meta.ObjectMeta"),
        2: ("spec", "policy.PodDisruptionBudgetSpec"),
    },
    "policy.PodDisruptionBudgetSpec": {
        1: ("minAvailable", "intorstr"),
        2: ("selector", "meta.LabelSelector"),
        3: ("maxUnavailable", "intorstr"),
        4: ("unhealthyPodEvictionPolicy", "string"),
    },
    "policy.Eviction": {
        1: ("metadata", "meta.ObjectMeta"),
        2: ("deleteOptions", "meta.DeleteOptions"),
    },
}

KINDS: Kinds = {
    ("policy/v1", "PodDisruptionBudget"): "policy.PodDisruptionBudget",
    ("policy/v1", "Eviction"): "policy.Eviction",
}
