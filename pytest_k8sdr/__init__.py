"""pytest-k8sdr: a Kubernetes disaster-recovery runbook as pytest tests.

Everything an experiment or a conftest needs is importable from here: the checks, the
rebalance, the result and fixture types, the errors. The other modules are private. The
simulated cluster has its own public face, `pytest_k8sdr.sim`.

Names are loaded on first use, so `import pytest_k8sdr` stays light (the simulator's node
agents import this package without ever loading the Kubernetes client).
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from pytest_k8sdr.checks import (
        PodHistory,
        assert_endpoints_exclude_node,
        assert_lb_drained,
        assert_lb_restored,
        assert_min_available,
        assert_no_split_brain,
        assert_node_isolated,
        assert_node_rejoined,
        assert_node_unreachable,
        assert_pods_rescheduled,
        assert_rebalanced,
        pod_history,
    )
    from pytest_k8sdr.cluster import Cluster, NodeView, PodView, Taint
    from pytest_k8sdr.config import Settings
    from pytest_k8sdr.errors import (
        ApiError,
        ApiUnavailable,
        ClusterCheckFailed,
        ConfigError,
        Conflict,
        FaultError,
        Forbidden,
        Gone,
        Invalid,
        K8sdrError,
        LockHeld,
        NotFound,
        ReadOnlyCluster,
        SLOExceeded,
        Throttled,
        ToolError,
        UndoError,
        WaitTimeout,
    )
    from pytest_k8sdr.factories import MakeLB, MakePDB, MakeWorkload
    from pytest_k8sdr.faults.machines import Machine, MachineError, Machines
    from pytest_k8sdr.faults.node import DrainReport, NodeFaults, NodeSnapshot
    from pytest_k8sdr.faults.rebalance import RebalanceReport, rebalance
    from pytest_k8sdr.journal import UndoStack
    from pytest_k8sdr.lb import LoadBalancer, ProbeSummary, TrafficProbe
    from pytest_k8sdr.lb.frontend import Frontend
    from pytest_k8sdr.results import DEFAULT_TIMEOUT, Result, Satisfied
    from pytest_k8sdr.runbook import PhaseRecord, Runbook
    from pytest_k8sdr.workloads import DisruptionBudget, Workload

__version__ = "0.1.0"

# Each public name and the private module it lives in.
_HOMES: dict[str, str] = {
    **dict.fromkeys(
        (
            "PodHistory",
            "assert_endpoints_exclude_node",
            "assert_lb_drained",
            "assert_lb_restored",
            "assert_min_available",
            "assert_no_split_brain",
            "assert_node_isolated",
            "assert_node_rejoined",
            "assert_node_unreachable",
            "assert_pods_rescheduled",
            "assert_rebalanced",
            "pod_history",
        ),
        "pytest_k8sdr.checks",
    ),
    **dict.fromkeys(("Cluster", "NodeView", "PodView", "Taint"), "pytest_k8sdr.cluster"),
    "Settings": "pytest_k8sdr.config",
    **dict.fromkeys(
        (
            "ApiError",
            "ApiUnavailable",
            "ClusterCheckFailed",
            "ConfigError",
            "Conflict",
            "FaultError",
            "Forbidden",
            "Gone",
            "Invalid",
            "K8sdrError",
            "LockHeld",
            "NotFound",
            "ReadOnlyCluster",
            "SLOExceeded",
            "Throttled",
            "ToolError",
            "UndoError",
            "WaitTimeout",
        ),
        "pytest_k8sdr.errors",
    ),
    **dict.fromkeys(("MakeLB", "MakePDB", "MakeWorkload"), "pytest_k8sdr.factories"),
    **dict.fromkeys(("Machine", "MachineError", "Machines"), "pytest_k8sdr.faults.machines"),
    **dict.fromkeys(("DrainReport", "NodeFaults", "NodeSnapshot"), "pytest_k8sdr.faults.node"),
    **dict.fromkeys(("RebalanceReport", "rebalance"), "pytest_k8sdr.faults.rebalance"),
    "UndoStack": "pytest_k8sdr.journal",
    **dict.fromkeys(("LoadBalancer", "ProbeSummary", "TrafficProbe"), "pytest_k8sdr.lb"),
    "Frontend": "pytest_k8sdr.lb.frontend",
    **dict.fromkeys(("DEFAULT_TIMEOUT", "Result", "Satisfied"), "pytest_k8sdr.results"),
    **dict.fromkeys(("PhaseRecord", "Runbook"), "pytest_k8sdr.runbook"),
    **dict.fromkeys(("DisruptionBudget", "Workload"), "pytest_k8sdr.workloads"),
}

__all__ = [
    "DEFAULT_TIMEOUT",
    "ApiError",
    "ApiUnavailable",
    "Cluster",
    "ClusterCheckFailed",
    "ConfigError",
    "Conflict",
    "DisruptionBudget",
    "DrainReport",
    "FaultError",
    "Forbidden",
    "Frontend",
    "Gone",
    "Invalid",
    "K8sdrError",
    "LoadBalancer",
    "LockHeld",
    "Machine",
    "MachineError",
    "Machines",
    "MakeLB",
    "MakePDB",
    "MakeWorkload",
    "NodeFaults",
    "NodeSnapshot",
    "NodeView",
    "NotFound",
    "PhaseRecord",
    "PodHistory",
    "PodView",
    "ProbeSummary",
    "ReadOnlyCluster",
    "RebalanceReport",
    "Result",
    "Runbook",
    "SLOExceeded",
    "Satisfied",
    "Settings",
    "Taint",
    "Throttled",
    "ToolError",
    "TrafficProbe",
    "UndoError",
    "UndoStack",
    "WaitTimeout",
    "Workload",
    "__version__",
    "assert_endpoints_exclude_node",
    "assert_lb_drained",
    "assert_lb_restored",
    "assert_min_available",
    "assert_no_split_brain",
    "assert_node_isolated",
    "assert_node_rejoined",
    "assert_node_unreachable",
    "assert_pods_rescheduled",
    "assert_rebalanced",
    "pod_history",
    "rebalance",
]


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'pytest_k8sdr' has no attribute {name!r}")
    value = getattr(_importlib.import_module(home), name)
    globals()[name] = value  # loaded once
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
