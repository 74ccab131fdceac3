"""The simulated Kubernetes cluster: API server, controllers and node agents on loopback.

Start one with `SimCluster.start(state_dir)` (or `k8sdr sim up`); clients reach it through
`SimCluster.kubeconfig_path` exactly as they reach a real cluster.
"""

from __future__ import annotations

from pytest_k8sdr.sim.apierrors import ApiError
from pytest_k8sdr.sim.faults import FaultConfig
from pytest_k8sdr.sim.launcher import CONTROL_PLANE, SimCluster, SimLaunchError
from pytest_k8sdr.sim.profiles import FAST, PROFILES, UPSTREAM, Profile, get_profile
from pytest_k8sdr.sim.store import ResourceType, Store, WatchEvent

__all__ = [
    "CONTROL_PLANE",
    "FAST",
    "PROFILES",
    "UPSTREAM",
    "ApiError",
    "FaultConfig",
    "Profile",
    "ResourceType",
    "SimCluster",
    "SimLaunchError",
    "Store",
    "WatchEvent",
    "get_profile",
]
