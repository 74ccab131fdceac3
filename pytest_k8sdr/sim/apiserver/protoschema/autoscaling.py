"""k8s.io/api autoscaling/v1 and v2 (`kubectl autoscale`, `kubectl scale`)."""

from __future__ import annotations

from pytest_k8sdr.sim.apiserver.protoschema.types import Kinds, Messages

MESSAGES: Messages = {
    "autoscaling.CrossVersionObjectReference": {
        1: ("kind", "string"),
        2: ("name", "string"),
        3: ("apiVersion", "string"),
    },
    "autoscaling.v1.HorizontalPodAutoscaler": {
        1: ("metadata", "meta.ObjectMeta"),
        2: ("spec", "autoscaling.v1.HorizontalPodAutoscalerSpec"),
    },
    "autoscaling.v1.HorizontalPodAutoscalerSpec": {
        1: ("scaleTargetRef", "autoscaling.CrossVersionObjectReference"),
        2: ("minReplicas", "int!"),
        3: ("maxReplicas", "int!"),
        4: ("targetCPUUtilizationPercentage", "int!"),
    },
    "autoscaling.v2.HorizontalPodAutoscaler": {
        1: ("metadata", "meta.ObjectMeta"),
        2: ("spec", "autoscaling.v2.HorizontalPodAutoscalerSpec"),
    },
    "autoscaling.v2.HorizontalPodAutoscalerSpec": {
        1: ("scaleTargetRef", "autoscaling.CrossVersionObjectReference"),
        2: ("minReplicas", "int!"),
        3: ("maxReplicas", "int!"),
        4: ("metrics", "[]autoscaling.v2.MetricSpec"),
    },
    "autoscaling.v2.MetricSpec": {
        1: ("type", "string"),
        4: ("resource", "autoscaling.v2.ResourceMetricSource"),
    },
    "autoscaling.v2.ResourceMetricSource": {
        1: ("name", "string"),
        2: ("target", "autoscaling.v2.MetricTarget"),
    },
    "autoscaling.v2.MetricTarget": {
        1: ("type", "string"),
        2: ("value", "quantity"),
        3: ("averageValue", "quantity"),
        4: ("averageUtilization", "int!"),
    },
    "autoscaling.Scale": {
        1: ("metadata", "meta.ObjectMeta"),
        2: ("spec", "autoscaling.ScaleSpec"),
    },
    "autoscaling.ScaleSpec": {1: ("replicas", "int!")},
}

KINDS: Kinds = {
    ("autoscaling/v1", "HorizontalPodAutoscaler"): "autoscaling.v1.HorizontalPodAutoscaler",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "autoscaling.v2.HorizontalPodAutoscaler",
    ("autoscaling/v1", "Scale"): "autoscaling.Scale",
}
