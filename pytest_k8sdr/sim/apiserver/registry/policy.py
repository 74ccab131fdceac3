"""The policy group: PodDisruptionBudgets (pkg/registry/policy/poddisruptionbudget).

The pods/eviction subresource that reads them is in `eviction`.
"""

from __future__ import annotations

from typing import ClassVar

from pytest_k8sdr.sim.apimachinery.types import JSON, ResourceType
from pytest_k8sdr.sim.apiserver.registry.strategy import ResetStatus, Resource

__all__ = ["RESOURCES"]


class PodDisruptionBudgetStrategy(ResetStatus):
    """The disruption controller owns the status; a fresh one shows its counters as 0."""

    empty_status: ClassVar[JSON] = {
        "disruptionsAllowed": 0,
        "currentHealthy": 0,
        "desiredHealthy": 0,
        "expectedPods": 0,
    }


RESOURCES = (
    Resource(
        ResourceType(
            "policy",
            "v1",
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            True,
            ("pdb",),
            frozenset({"status"}),
        ),
        PodDisruptionBudgetStrategy,
    ),
)
