"""The networking.k8s.io group: Ingress, IngressClass, NetworkPolicy (pkg/registry/networking).

Stored, defaulted and validated as pkg/apis/networking/{v1/defaults.go,validation} do. No
ingress controller routes traffic and no network plugin enforces policies in the simulator.
"""

from __future__ import annotations

from typing import ClassVar

from pytest_k8sdr.sim.apimachinery.types import JSON, ResourceType
from pytest_k8sdr.sim.apiserver.registry.strategy import (
    Cause,
    ResetStatus,
    Resource,
    Strategy,
    cause,
    immutable,
    required,
    unsupported,
)

__all__ = ["RESOURCES"]

_GROUP = "networking.k8s.io"
_PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")
_POLICY_TYPES = ("Egress", "Ingress")


def _backend_causes(path: str, backend: object) -> list[Cause]:
    if not isinstance(backend, dict) or not (backend.get("service") or backend.get("resource")):
        return [
            cause(path, "Invalid value: one backend (`service` or `resource`) must be specified")
        ]
    service = backend.get("service")
    if not service:
        return []
    causes: list[Cause] = []
    if not service.get("name"):
        causes.append(required(f"{path}.service.name"))
    port = service.get("port") or {}
    if bool(port.get("name")) == bool(port.get("number")):
        causes.append(
            cause(f"{path}.service.port", "Invalid value: port name or number is required")
        )
    return causes


class IngressStrategy(ResetStatus):
    """ValidateIngress: a default backend or rules; each path typed, absolute, with a backend."""

    empty_status: ClassVar[JSON] = {"loadBalancer": {}}

    def validate(self, obj: JSON, old: JSON | None) -> list[Cause]:
        """The backends and paths of spec."""
        spec = obj.get("spec") or {}
        causes: list[Cause] = []
        if not spec.get("defaultBackend") and not spec.get("rules"):
            causes.append(
                cause("spec", "Invalid value: either `defaultBackend` or `rules` must be specified")
            )
        if spec.get("defaultBackend"):
            causes += _backend_causes("spec.defaultBackend", spec["defaultBackend"])
        for r, rule in enumerate(spec.get("rules") or []):
            http = (rule or {}).get("http")
            if http is None:
                continue
            for n, item in enumerate(http.get("paths") or []):
                path = f"spec.rules[{r}].http.paths[{n}]"
                kind = (item or {}).get("pathType")
                if not kind:
                    causes.append(required(f"{path}.pathType", "pathType must be specified"))
                elif kind not in _PATH_TYPES:
                    causes.append(unsupported(f"{path}.pathType", kind, _PATH_TYPES))
                elif kind in ("Exact", "Prefix") and not str(item.get("path", "")).startswith("/"):
                    causes.append(
                        cause(
                            f"{path}.path",
                            f'Invalid value: "{item.get("path", "")}": must be an absolute path',
                        )
                    )
                causes += _backend_causes(f"{path}.backend", (item or {}).get("backend"))
        return causes


class IngressClassStrategy(Strategy):
    """ValidateIngressClass: spec.controller required and immutable."""

    track_generation: ClassVar[bool] = True

    def validate(self, obj: JSON, old: JSON | None) -> list[Cause]:
        """The controller name."""
        controller = (obj.get("spec") or {}).get("controller")
        if not controller:
            return [required("spec.controller")]
        if old is not None and controller != (old.get("spec") or {}).get("controller"):
            return [immutable("spec.controller", controller)]
        return []


class NetworkPolicyStrategy(Strategy):
    """SetDefaults_NetworkPolicy (policyTypes, TCP ports); ValidateNetworkPolicy."""

    def default(self, obj: JSON) -> None:
        """PolicyTypes from the rules present; ports TCP."""
        spec = obj.setdefault("spec", {})
        spec.setdefault("podSelector", {})
        if not spec.get("policyTypes"):
            types = ["Ingress"]
            if spec.get("egress"):
                types.append("Egress")
            spec["policyTypes"] = types
        for direction in ("ingress", "egress"):
            for rule in spec.get(direction) or []:
                for port in (rule or {}).get("ports") or []:
                    if isinstance(port, dict):
                        port.setdefault("protocol", "TCP")

    def validate(self, obj: JSON, old: JSON | None) -> list[Cause]:
        """Known policy types."""
        causes: list[Cause] = []
        for kind in (obj.get("spec") or {}).get("policyTypes") or []:
            if kind not in _POLICY_TYPES:
                causes.append(unsupported("spec.policyTypes", kind, _POLICY_TYPES))
        return causes


RESOURCES = (
    Resource(
        ResourceType(_GROUP, "v1", "ingresses", "Ingress", True, ("ing",), frozenset({"status"})),
        IngressStrategy,
    ),
    Resource(
        ResourceType(_GROUP, "v1", "ingressclasses", "IngressClass", False), IngressClassStrategy
    ),
    Resource(
        ResourceType(_GROUP, "v1", "networkpolicies", "NetworkPolicy", True, ("netpol",)),
        NetworkPolicyStrategy,
    ),
)
