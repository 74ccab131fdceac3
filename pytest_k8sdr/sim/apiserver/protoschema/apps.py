"""k8s.io/api apps/v1."""

from __future__ import annotations

from pytest_k8sdr.sim.apiserver.protoschema.types import Kinds, Messages

MESSAGES: Messages = {
    "apps.Deployment": {1: ("metadata", "meta.ObjectMeta"), 2: ("spec", "apps.DeploymentSpec")},
    "apps.DeploymentSpec": {
        1: ("replicas", "int!"),
        2: ("selector", "meta.LabelSelector"),
        3: ("template", "core.PodTemplateSpec"),
        4: ("strategy", "apps.DeploymentStrategy"),
        5: ("minReadySeconds", "int"),
        6: ("revisionHistoryLimit", "int!"),
        7: ("paused", "bool"),
        9: ("progressDeadlineSeconds", "int!"),
    },
    "apps.DeploymentStrategy": {
        1: ("type", "string"),
        2: ("rollingUpdate", "apps.RollingUpdateDeployment"),
    },
    "apps.RollingUpdateDeployment": {
        1: ("maxUnavailable", "intorstr"),
        2: ("maxSurge", "intorstr"),
    },
}

KINDS: Kinds = {("apps/v1", "Deployment"): "apps.Deployment"}
