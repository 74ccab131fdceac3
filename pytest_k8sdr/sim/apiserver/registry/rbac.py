"""The rbac.authorization.k8s.io group: Roles, ClusterRoles and their bindings.

Stored, defaulted and validated (pkg/apis/rbac/validation). Not modelled: authorization
itself (any valid token is cluster-admin), escalation checks, ClusterRole aggregation.
"""

from __future__ import annotations

from typing import ClassVar

from pytest_k8sdr.sim.apimachinery.types import JSON, ResourceType
from pytest_k8sdr.sim.apiserver.registry.strategy import (
    Cause,
    Resource,
    Strategy,
    cause,
    required,
    unsupported,
)

__all__ = ["RESOURCES"]

_GROUP = "rbac.authorization.k8s.io"
_SUBJECT_KINDS = ("Group", "ServiceAccount", "User")


class RoleStrategy(Strategy):
    """ValidateRole / ValidateClusterRole: every rule has verbs and what they apply to."""

    track_generation: ClassVar[bool] = False
    namespaced: ClassVar[bool] = True

    def validate(self, obj: JSON, old: JSON | None) -> list[Cause]:
        """Each rule: verbs; api groups and resources, or (cluster roles) non-resource URLs."""
        causes: list[Cause] = []
        for n, rule in enumerate(obj.get("rules") or []):
            path = f"rules[{n}]"
            rule = rule or {}
            if not rule.get("verbs"):
                causes.append(required(f"{path}.verbs", "verbs must contain at least one value"))
            urls = rule.get("nonResourceURLs")
            if urls:
                if self.namespaced:
                    causes.append(
                        cause(
                            f"{path}.nonResourceURLs",
                            f"Invalid value: {urls}: namespaced rules cannot apply to "
                            "non-resource URLs",
                        )
                    )
                if rule.get("apiGroups") or rule.get("resources"):
                    causes.append(
                        cause(
                            f"{path}.nonResourceURLs",
                            f"Invalid value: {urls}: rules cannot apply to both regular "
                            "resources and non-resource URLs",
                        )
                    )
                continue
            if not rule.get("apiGroups"):
                causes.append(
                    required(
                        f"{path}.apiGroups", "resource rules must supply at least one api group"
                    )
                )
            if not rule.get("resources"):
                causes.append(
                    required(
                        f"{path}.resources", "resource rules must supply at least one resource"
                    )
                )
        return causes


class ClusterRoleStrategy(RoleStrategy):
    """ClusterRoles may also grant non-resource URLs."""

    namespaced: ClassVar[bool] = False


class RoleBindingStrategy(Strategy):
    """Subjects' apiGroup defaulted; roleRef required, of a known kind, and immutable."""

    track_generation: ClassVar[bool] = False
    role_kinds: ClassVar[tuple[str, ...]] = ("ClusterRole", "Role")
    namespaced: ClassVar[bool] = True

    def default(self, obj: JSON) -> None:
        """SetDefaults_Subject: rbac's group for users and groups, the core one for SAs."""
        for subject in obj.get("subjects") or []:
            if isinstance(subject, dict) and "apiGroup" not in subject:
                subject["apiGroup"] = "" if subject.get("kind") == "ServiceAccount" else _GROUP

    def validate(self, obj: JSON, old: JSON | None) -> list[Cause]:
        """RoleRef and subjects."""
        causes: list[Cause] = []
        ref = obj.get("roleRef") or {}
        if ref.get("apiGroup", _GROUP) != _GROUP:
            causes.append(unsupported("roleRef.apiGroup", ref.get("apiGroup"), (_GROUP,)))
        if ref.get("kind") not in self.role_kinds:
            causes.append(unsupported("roleRef.kind", ref.get("kind"), self.role_kinds))
        if not ref.get("name"):
            causes.append(required("roleRef.name"))
        if old is not None and ref != (old.get("roleRef") or {}):
            causes.append(cause("roleRef", f"Invalid value: {ref}: cannot change roleRef"))
        for n, subject in enumerate(obj.get("subjects") or []):
            path = f"subjects[{n}]"
            subject = subject or {}
            kind = subject.get("kind")
            if kind not in _SUBJECT_KINDS:
                causes.append(unsupported(f"{path}.kind", kind, _SUBJECT_KINDS))
            if not subject.get("name"):
                causes.append(required(f"{path}.name"))
            if kind == "ServiceAccount" and not self.namespaced and not subject.get("namespace"):
                causes.append(required(f"{path}.namespace"))
        return causes


class ClusterRoleBindingStrategy(RoleBindingStrategy):
    """A cluster binding refers to a ClusterRole only."""

    role_kinds: ClassVar[tuple[str, ...]] = ("ClusterRole",)
    namespaced: ClassVar[bool] = False


RESOURCES = (
    Resource(
        ResourceType(_GROUP, "v1", "clusterrolebindings", "ClusterRoleBinding", False),
        ClusterRoleBindingStrategy,
    ),
    Resource(ResourceType(_GROUP, "v1", "clusterroles", "ClusterRole", False), ClusterRoleStrategy),
    Resource(ResourceType(_GROUP, "v1", "rolebindings", "RoleBinding", True), RoleBindingStrategy),
    Resource(ResourceType(_GROUP, "v1", "roles", "Role", True), RoleStrategy),
)
