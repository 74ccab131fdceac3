"""The simulated Kubernetes cluster: API server, controllers and node agents on loopback.

Start one with `SimCluster.start(state_dir)` (or `k8sdr sim up`); clients reach it through
`SimCluster.kubeconfig_path` exactly as they reach a real cluster. Everything the simulator
raises on purpose is a `SimError`. `README.md` beside this file lays out its components.
"""

from __future__ import annotations

from pytest_k8sdr.sim.apimachinery.errors import ApiError
from pytest_k8sdr.sim.apimachinery.types import ResourceType, WatchEvent
from pytest_k8sdr.sim.controlplane.store import Store
from pytest_k8sdr.sim.errors import SimError, SimLaunchError
from pytest_k8sdr.sim.faults import FaultConfig
from pytest_k8sdr.sim.launcher import CONTROL_PLANE, NodeShape, SimCluster
from pytest_k8sdr.sim.profiles import FAST, PROFILES, UPSTREAM, Profile, get_profile

__all__ = [
    "CONTROL_PLANE",
    "FAST",
    "PROFILES",
    "UPSTREAM",
    "ApiError",
    "FaultConfig",
    "NodeShape",
    "Profile",
    "ResourceType",
    "SimCluster",
    "SimError",
    "SimLaunchError",
    "Store",
    "WatchEvent",
    "get_profile",
]
