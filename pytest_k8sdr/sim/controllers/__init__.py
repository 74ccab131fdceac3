"""The simulated control plane's controllers, each switchable by its upstream name.

`--disable-controller NAME` works like kube-controller-manager's `--controllers=-NAME`; the
scheduler and the DefaultTolerationSeconds admission plugin are switchable the same way.
Ownership GC ("garbagecollector") lives in the store; pods/eviction is API-server logic and is
served whatever is disabled.

Not modelled: scheduler preemption, inter-pod (anti-)affinity, volumes and PVC templates,
ControllerRevision objects, orphan adoption by ReplicaSets, Deployment progress deadlines,
DaemonSet surge, Jobs/CronJobs/HPA, EndpointSlice mirroring, dryRun evictions.
"""

from __future__ import annotations

import asyncio

from pytest_k8sdr.sim import eviction
from pytest_k8sdr.sim.controllers._base import Context, Controller
from pytest_k8sdr.sim.controllers.daemonset import DaemonSetController
from pytest_k8sdr.sim.controllers.defaulttolerationseconds import DefaultTolerationSeconds
from pytest_k8sdr.sim.controllers.deployment import DeploymentController
from pytest_k8sdr.sim.controllers.disruption import DisruptionController
from pytest_k8sdr.sim.controllers.endpointslice import EndpointsController, EndpointSliceController
from pytest_k8sdr.sim.controllers.namespace import NamespaceController
from pytest_k8sdr.sim.controllers.nodelifecycle import NodeLifecycleController
from pytest_k8sdr.sim.controllers.podgc import PodGCController
from pytest_k8sdr.sim.controllers.replicaset import ReplicaSetController
from pytest_k8sdr.sim.controllers.scheduler import Scheduler
from pytest_k8sdr.sim.controllers.statefulset import StatefulSetController
from pytest_k8sdr.sim.controllers.tainteviction import TaintEvictionController
from pytest_k8sdr.sim.profiles import Profile
from pytest_k8sdr.sim.store import Store

__all__ = ["CONTROLLERS", "Controller", "start_controllers"]

CONTROLLERS: dict[str, type[Controller]] = {
    c.name: c
    for c in (
        DefaultTolerationSeconds,
        NodeLifecycleController,
        TaintEvictionController,
        Scheduler,
        ReplicaSetController,
        DeploymentController,
        StatefulSetController,
        DaemonSetController,
        PodGCController,
        EndpointSliceController,
        EndpointsController,
        NamespaceController,
        DisruptionController,
    )
}


# Switchable elsewhere: ownerReference GC is the store's (it ignores this set).
HANDLED_ELSEWHERE = frozenset({"garbagecollector"})


def start_controllers(
    store: Store, profile: Profile, disabled: set[str]
) -> list[asyncio.Task[None]]:
    """Start every controller not in `disabled` on the running loop; returns their tasks.

    An unknown name in `disabled` is a ValueError naming the accepted ones, before anything
    starts.
    """
    unknown = sorted(set(disabled) - set(CONTROLLERS) - HANDLED_ELSEWHERE)
    if unknown:
        accepted = ", ".join(sorted({*CONTROLLERS, *HANDLED_ELSEWHERE}))
        raise ValueError(f"unknown controller(s) {', '.join(unknown)}; accepted: {accepted}")
    eviction.register(store)
    ctx = Context(store, profile)
    tasks: list[asyncio.Task[None]] = []
    for name, cls in CONTROLLERS.items():
        if name in disabled:
            continue
        tasks.extend(cls(ctx).start())
    return tasks
