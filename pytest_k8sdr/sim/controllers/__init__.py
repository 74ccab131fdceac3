"""The simulated control plane's controllers, each switchable by its upstream name.

`--disable-controller NAME` works like kube-controller-manager's `--controllers=-NAME`; the
scheduler and the admission plugins (DefaultTolerationSeconds, Priority, ServiceAccount) are
switchable the same way.
Ownership GC ("garbagecollector", `garbagecollector.GarbageCollector`) acts inside the writes
that make it due and is switched through the same names; pods/eviction and
serviceaccounts/token are API-server logic (`apiserver.registry.eviction`, `.tokenrequest`)
and are served whatever is disabled.

A `ControllerManager` also switches them while the cluster runs (the server's
`/k8sdr/v1/controllers` endpoint, `k8sdr sim controller`): what a restart of
kube-controller-manager or kube-scheduler with a different `--controllers` list does, without
the restart. A controller switched on again starts from a fresh list of its world.

Storage as on kind: the DefaultStorageClass admission plugin, the PV controller's binder
(`persistentvolume-binder`) and kind's volume provisioner (`local-path-provisioner`, which
also installs the storage classes). Not modelled: attach/detach, ControllerRevision objects,
orphan adoption by ReplicaSets, Deployment progress deadlines, DaemonSet surge,
HPA, EndpointSlice mirroring, dryRun evictions.
"""

from __future__ import annotations

import asyncio

from pytest_k8sdr.sim.apimachinery.clock import Clock
from pytest_k8sdr.sim.apiserver.registry import eviction, tokenrequest
from pytest_k8sdr.sim.apiserver.registry.store import Store
from pytest_k8sdr.sim.controllers import garbagecollector
from pytest_k8sdr.sim.controllers.admissionplugins import (
    DefaultStorageClass,
    DefaultTolerationSeconds,
    PriorityAdmission,
    ServiceAccountAdmission,
)
from pytest_k8sdr.sim.controllers.controller import Context, Controller
from pytest_k8sdr.sim.controllers.cronjob import CronJobController
from pytest_k8sdr.sim.controllers.daemonset import DaemonSetController
from pytest_k8sdr.sim.controllers.deployment import DeploymentController
from pytest_k8sdr.sim.controllers.disruption import DisruptionController
from pytest_k8sdr.sim.controllers.endpointslice import EndpointsController, EndpointSliceController
from pytest_k8sdr.sim.controllers.garbagecollector import GarbageCollector
from pytest_k8sdr.sim.controllers.job import JobController
from pytest_k8sdr.sim.controllers.localpath import LocalPathProvisioner
from pytest_k8sdr.sim.controllers.namespace import NamespaceController
from pytest_k8sdr.sim.controllers.nodelifecycle import NodeLifecycleController
from pytest_k8sdr.sim.controllers.persistentvolume import PersistentVolumeController
from pytest_k8sdr.sim.controllers.podgc import PodGCController
from pytest_k8sdr.sim.controllers.replicaset import ReplicaSetController
from pytest_k8sdr.sim.controllers.scheduler import Scheduler
from pytest_k8sdr.sim.controllers.serviceaccount import (
    RootCACertPublisher,
    ServiceAccountsController,
)
from pytest_k8sdr.sim.controllers.statefulset import StatefulSetController
from pytest_k8sdr.sim.controllers.tainteviction import TaintEvictionController
from pytest_k8sdr.sim.controllers.ttlafterfinished import TTLAfterFinishedController
from pytest_k8sdr.sim.profiles import Profile

__all__ = ["CONTROLLERS", "Controller", "ControllerManager", "start_controllers"]

CONTROLLERS: dict[str, type[Controller]] = {
    c.name: c
    for c in (
        DefaultTolerationSeconds,
        PriorityAdmission,
        ServiceAccountAdmission,
        ServiceAccountsController,
        RootCACertPublisher,
        DefaultStorageClass,
        NodeLifecycleController,
        TaintEvictionController,
        Scheduler,
        ReplicaSetController,
        DeploymentController,
        StatefulSetController,
        DaemonSetController,
        JobController,
        CronJobController,
        TTLAfterFinishedController,
        PodGCController,
        EndpointSliceController,
        EndpointsController,
        NamespaceController,
        DisruptionController,
        PersistentVolumeController,
        LocalPathProvisioner,
    )
}


# Always attached (it keeps the owner graph), switched on and off in place.
GARBAGE_COLLECTOR = garbagecollector.NAME
HANDLED_ELSEWHERE = frozenset({GARBAGE_COLLECTOR})


def _check_names(names: set[str]) -> None:
    unknown = sorted(names - set(CONTROLLERS) - HANDLED_ELSEWHERE)
    if unknown:
        accepted = ", ".join(sorted({*CONTROLLERS, *HANDLED_ELSEWHERE}))
        raise ValueError(f"unknown controller(s) {', '.join(unknown)}; accepted: {accepted}")


class ControllerManager:
    """The running controllers, each switchable on and off by name while the loop runs."""

    def __init__(self, store: Store, profile: Profile, root_ca: bytes = b"") -> None:
        self.store = store
        self.garbage_collector = GarbageCollector.attach(store)
        self._ctx = Context(store, profile, root_ca)
        self._running: dict[str, Controller] = {}

    def start(self, disabled: set[str]) -> None:
        """Start every controller not in `disabled` (ValueError on an unknown name first)."""
        _check_names(disabled)
        eviction.register(self.store)
        tokenrequest.register(self.store)
        if GARBAGE_COLLECTOR in disabled:
            self.garbage_collector.set_enabled(False)
        for name in CONTROLLERS:
            if name not in disabled:
                self.set(name, enabled=True)

    @property
    def clock(self) -> Clock:
        """The clock CronJob schedules are read in (`Clock.advance` jumps forward)."""
        return self._ctx.clock

    def advance_clock(self, seconds: float) -> float:
        """Move the controllers' clock forward (ValueError if negative); the total offset."""
        return self._ctx.clock.advance(seconds)

    def states(self) -> dict[str, bool]:
        """Whether each switchable name runs, by name."""
        states = {name: name in self._running for name in CONTROLLERS}
        states[GARBAGE_COLLECTOR] = self.garbage_collector.enabled
        return dict(sorted(states.items()))

    def set(self, name: str, *, enabled: bool) -> bool:
        """Switch `name` on or off; returns whether anything changed."""
        _check_names({name})
        if name == GARBAGE_COLLECTOR:
            changed = self.garbage_collector.enabled != enabled
            self.garbage_collector.set_enabled(enabled)
            return changed
        running = self._running.get(name)
        if enabled == (running is not None):
            return False
        if running is not None:
            running.stop()
            del self._running[name]
            return True
        controller = CONTROLLERS[name](self._ctx)
        controller.start()
        self._running[name] = controller
        return True

    def tasks(self) -> list[asyncio.Task[None]]:
        """The tasks of the running controllers."""
        return [t for c in self._running.values() for t in c._tasks]

    def stop(self) -> None:
        """Stop every controller."""
        for controller in self._running.values():
            controller.stop()
        self._running.clear()


def start_controllers(
    store: Store, profile: Profile, disabled: set[str]
) -> list[asyncio.Task[None]]:
    """Start every controller not in `disabled` on the running loop; returns their tasks.

    An unknown name in `disabled` is a ValueError naming the accepted ones, before anything
    starts.
    """
    manager = ControllerManager(store, profile)
    manager.start(disabled)
    return manager.tasks()
