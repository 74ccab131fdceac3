"""The apps group's workloads: one declaration each, with its strategy (pkg/registry/apps)."""

from __future__ import annotations

from typing import ClassVar

from pytest_k8sdr.sim.apimachinery.selectors import selector_from_label_selector, selector_matches
from pytest_k8sdr.sim.apimachinery.types import JSON, ResourceType
from pytest_k8sdr.sim.apiserver.registry.podspec import default_template, validate_pod_spec
from pytest_k8sdr.sim.apiserver.registry.strategy import (
    Cause,
    ResetStatus,
    Resource,
    Strategy,
    cause,
)

__all__ = ["RESOURCES"]


class WorkloadStrategy(ResetStatus):
    """A controller-managed set of pods: a pod template, a selector that matches it, replicas."""

    def validate(self, obj: JSON, old: JSON | None) -> list[Cause]:
        """The template's pod spec, the selector (required, matching, immutable), replicas."""
        spec = obj.get("spec") or {}
        template = spec.get("template") or {}
        causes = validate_pod_spec(template.get("spec") or {}, "spec.template.spec")
        selector = spec.get("selector")
        if not selector:
            causes.append(cause("spec.selector", "Required value", "FieldValueRequired"))
        else:
            if not selector_from_label_selector(selector):
                causes.append(
                    cause(
                        "spec.selector", "Invalid value: empty selector is invalid for deployment"
                    )
                )
            elif not selector_matches(selector, (template.get("metadata") or {}).get("labels")):
                causes.append(
                    cause(
                        "spec.template.metadata.labels",
                        f"Invalid value: {(template.get('metadata') or {}).get('labels')}: "
                        "`selector` does not match template `labels`",
                    )
                )
            if old is not None and (old.get("spec") or {}).get("selector") != selector:
                causes.append(cause("spec.selector", "Invalid value: field is immutable"))
        replicas = spec.get("replicas", 0)
        if not isinstance(replicas, int) or replicas < 0:
            causes.append(
                cause(
                    "spec.replicas",
                    f"Invalid value: {replicas}: must be greater than or equal to 0",
                )
            )
        return causes


class DeploymentStrategy(WorkloadStrategy):
    """pkg/apis/apps/v1/defaults.go SetDefaults_Deployment."""

    def default(self, obj: JSON) -> None:
        """Replicas 1, RollingUpdate 25%/25%, history 10, progress deadline 600s."""
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            ru = strategy.setdefault("rollingUpdate", {})
            ru.setdefault("maxUnavailable", "25%")
            ru.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        default_template(obj)


class ReplicaSetStrategy(WorkloadStrategy):
    """SetDefaults_ReplicaSet."""

    empty_status: ClassVar[JSON] = {"replicas": 0}

    def default(self, obj: JSON) -> None:
        """Replicas 1."""
        obj.setdefault("spec", {}).setdefault("replicas", 1)
        default_template(obj)


class StatefulSetStrategy(WorkloadStrategy):
    """SetDefaults_StatefulSet."""

    empty_status: ClassVar[JSON] = {"replicas": 0, "availableReplicas": 0}

    def default(self, obj: JSON) -> None:
        """Replicas 1, OrderedReady, RollingUpdate partition 0, retain PVCs."""
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        spec.setdefault("podManagementPolicy", "OrderedReady")
        us = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        if us.get("type", "RollingUpdate") == "RollingUpdate":
            us.setdefault("type", "RollingUpdate")
            us.setdefault("rollingUpdate", {}).setdefault("partition", 0)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault(
            "persistentVolumeClaimRetentionPolicy",
            {"whenDeleted": "Retain", "whenScaled": "Retain"},
        )
        default_template(obj)


class DaemonSetStrategy(WorkloadStrategy):
    """SetDefaults_DaemonSet."""

    empty_status: ClassVar[JSON] = {
        "currentNumberScheduled": 0,
        "numberMisscheduled": 0,
        "desiredNumberScheduled": 0,
        "numberReady": 0,
    }

    def default(self, obj: JSON) -> None:
        """RollingUpdate maxUnavailable 1, maxSurge 0, history 10."""
        spec = obj.setdefault("spec", {})
        us = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        if us.get("type", "RollingUpdate") == "RollingUpdate":
            us.setdefault("type", "RollingUpdate")
            ru = us.setdefault("rollingUpdate", {})
            ru.setdefault("maxUnavailable", 1)
            ru.setdefault("maxSurge", 0)
        spec.setdefault("revisionHistoryLimit", 10)
        default_template(obj)


class ControllerRevisionStrategy(Strategy):
    """ValidateControllerRevision{,Update}: a revision >= 0; the data never changes."""

    track_generation: ClassVar[bool] = False

    def validate(self, obj: JSON, old: JSON | None) -> list[Cause]:
        """A non-negative revision; the data immutable."""
        causes: list[Cause] = []
        revision = obj.get("revision")
        if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0:
            causes.append(
                cause("revision", f"Invalid value: {revision}: must be greater than or equal to 0")
            )
        if old is not None and obj.get("data") != old.get("data"):
            causes.append(cause("data", "Invalid value: field is immutable"))
        return causes


_SCALE = frozenset({"status", "scale"})

# pkg/registry/apps/replicaset/strategy.go ReplicaSetToSelectableFields.
RESOURCES = (
    Resource(
        ResourceType("apps", "v1", "deployments", "Deployment", True, ("deploy",), _SCALE),
        DeploymentStrategy,
    ),
    Resource(
        ResourceType(
            "apps",
            "v1",
            "replicasets",
            "ReplicaSet",
            True,
            ("rs",),
            _SCALE,
            frozenset({"status.replicas"}),
        ),
        ReplicaSetStrategy,
    ),
    Resource(
        ResourceType("apps", "v1", "statefulsets", "StatefulSet", True, ("sts",), _SCALE),
        StatefulSetStrategy,
    ),
    Resource(
        ResourceType("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), frozenset({"status"})),
        DaemonSetStrategy,
    ),
    Resource(
        ResourceType("apps", "v1", "controllerrevisions", "ControllerRevision", True),
        ControllerRevisionStrategy,
    ),
)
