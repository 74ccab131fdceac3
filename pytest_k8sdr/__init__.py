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
        assert_eviction_halted,
        assert_min_available,
        assert_no_split_brain,
        assert_node_isolated,
        assert_node_rejoined,
        assert_node_unreachable,
        assert_pods_rescheduled,
        assert_pods_unschedulable,
        assert_rebalanced,
        pod_history,
    )
    from pytest_k8sdr.cluster import Cluster, NodeView, PodView, Taint
    from pytest_k8sdr.config import Settings, SteadyStateProbe
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
        LockLost,
        NotFound,
        PrometheusError,
        ReadOnlyCluster,
        RecoverRefused,
        SLOExceeded,
        SteadyStateBreached,
        SteadyStateNotMet,
        Throttled,
        ToolError,
        UndoError,
        WaitTimeout,
    )
    from pytest_k8sdr.factories import MakeLB, MakePDB, MakeWorkload
    from pytest_k8sdr.faults.machines import Machine, MachineError, Machines
    from pytest_k8sdr.faults.node import DrainReport, NodeFaults, NodeSnapshot
    from pytest_k8sdr.faults.rebalance import RebalanceReport, rebalance
    from pytest_k8sdr.lb import (
        LoadBalancer,
        ProbeSummary,
        TrafficProbe,
        assert_lb_drained,
        assert_lb_restored,
        assert_lb_serving,
    )
    from pytest_k8sdr.lb.frontend import Frontend
    from pytest_k8sdr.prometheus.client import Prometheus, Sample
    from pytest_k8sdr.results import DEFAULT_TIMEOUT, Result, Satisfied
    from pytest_k8sdr.runbook import PhaseRecord, Point, Runbook
    from pytest_k8sdr.steadystate import assert_promql
    from pytest_k8sdr.undo import UndoStack
    from pytest_k8sdr.workloads import DisruptionBudget, Workload

__version__ = "0.1.0"

# The private modules the public names live in, loaded on first use of any of them.
_HOMES = (
    "pytest_k8sdr.errors",
    "pytest_k8sdr.results",
    "pytest_k8sdr.config",
    "pytest_k8sdr.cluster",
    "pytest_k8sdr.workloads",
    "pytest_k8sdr.undo",
    "pytest_k8sdr.faults.machines",
    "pytest_k8sdr.faults.node",
    "pytest_k8sdr.faults.rebalance",
    "pytest_k8sdr.lb",
    "pytest_k8sdr.lb.frontend",
    "pytest_k8sdr.prometheus.client",
    "pytest_k8sdr.steadystate",
    "pytest_k8sdr.checks",
    "pytest_k8sdr.runbook",
    "pytest_k8sdr.factories",
)

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
    "LockLost",
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
    "Point",
    "ProbeSummary",
    "Prometheus",
    "PrometheusError",
    "ReadOnlyCluster",
    "RebalanceReport",
    "RecoverRefused",
    "Result",
    "Runbook",
    "SLOExceeded",
    "Sample",
    "Satisfied",
    "Settings",
    "SteadyStateBreached",
    "SteadyStateNotMet",
    "SteadyStateProbe",
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
    "assert_eviction_halted",
    "assert_lb_drained",
    "assert_lb_restored",
    "assert_lb_serving",
    "assert_min_available",
    "assert_no_split_brain",
    "assert_node_isolated",
    "assert_node_rejoined",
    "assert_node_unreachable",
    "assert_pods_rescheduled",
    "assert_pods_unschedulable",
    "assert_promql",
    "assert_rebalanced",
    "pod_history",
    "rebalance",
]


def __getattr__(name: str) -> object:
    if name in __all__:
        for home in _HOMES:
            module = _importlib.import_module(home)
            if name in vars(module):
                globals()[name] = value = vars(module)[name]  # loaded once
                return value
    raise AttributeError(f"module 'pytest_k8sdr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
