"""pytest-k8sdr: a Kubernetes disaster-recovery runbook as pytest tests.

Everything a test or a conftest needs is importable from here; other modules are private.
The simulated cluster has its own public face, `pytest_k8sdr.sim`.
"""

from __future__ import annotations

from pytest_k8sdr.config import Settings
from pytest_k8sdr.errors import (
    ClusterCheckFailed,
    ConfigError,
    FaultError,
    K8sdrError,
    SLOExceeded,
    ToolError,
    UndoError,
)
from pytest_k8sdr.undo import UndoStack

__version__ = "0.1.0"

__all__ = [
    "ClusterCheckFailed",
    "ConfigError",
    "FaultError",
    "K8sdrError",
    "SLOExceeded",
    "Settings",
    "ToolError",
    "UndoError",
    "UndoStack",
    "__version__",
]
