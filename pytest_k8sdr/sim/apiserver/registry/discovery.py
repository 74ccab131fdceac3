"""The discovery.k8s.io group: EndpointSlices (pkg/registry/discovery/endpointslice)."""

from __future__ import annotations

from pytest_k8sdr.sim.apimachinery.types import ResourceType
from pytest_k8sdr.sim.apiserver.registry.core import NoGeneration
from pytest_k8sdr.sim.apiserver.registry.strategy import Resource

__all__ = ["RESOURCES"]

RESOURCES = (
    Resource(
        ResourceType("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
        NoGeneration,
    ),
)
