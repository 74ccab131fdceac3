"""The coordination.k8s.io group: Leases, which kubelets renew (pkg/registry/coordination)."""

from __future__ import annotations

from pytest_k8sdr.sim.apimachinery.types import ResourceType
from pytest_k8sdr.sim.apiserver.registry.core import NoGeneration
from pytest_k8sdr.sim.apiserver.registry.strategy import Resource

__all__ = ["RESOURCES"]

RESOURCES = (
    Resource(ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True), NoGeneration),
)
