"""VolumeBinding (pkg/scheduler/framework/plugins/volumebinding: volume_binding.go, binder.go).

PreFilter: a pod whose claim does not exist is rejected (`persistentvolumeclaim "C" not
found`), one with an unbound claim of an Immediate class too (`pod has unbound immediate
PersistentVolumeClaims`), both UnschedulableAndUnresolvable; a bound claim whose volume is gone
gives `pvc(s) bound to non-existent pv(s)`. Filter: a bound claim's volume must admit the node
by its node affinity (`node(s) had volume node affinity conflict`): a local volume pins its pod
to the volume's node, and when that node is dead or deleted the pod stays Pending. An unbound
WaitForFirstConsumer claim already given a node (`volume.kubernetes.io/selected-node`) fits
only that node (`node(s) didn't find available persistent volumes to bind`). PreBind annotates
the unbound WaitForFirstConsumer claims with the chosen node, so the provisioner makes their
volumes there.

Upstream's PreBind then waits (up to its bind timeout) until the claims are bound, and only
then binds the pod. The simulator's scheduling cycle is synchronous, so PreBind answers Wait
instead: the pod goes back to the queue quietly (no FailedScheduling, no PodScheduled=False)
and is retried when a claim or volume changes; by then its claims are bound to volumes on the
chosen node, so it lands there. Either way a pod is bound only once its claims are.
Not modelled: static volumes for WaitForFirstConsumer claims chosen at scheduling (the PV
controller binds them after the node is selected), capacity tracking, allowedTopologies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pytest_k8sdr.sim.apimachinery.errors import ApiError
from pytest_k8sdr.sim.apimachinery.meta import meta
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.controllers.scheduler.framework import (
    EVENT_NODE_ADD,
    EVENT_NODE_UPDATE,
    SKIP,
    Code,
    CycleState,
    FilterPlugin,
    Handle,
    NodeInfo,
    PodInfo,
    PreBindPlugin,
    PreFilterPlugin,
    Status,
)
from pytest_k8sdr.sim.controllers.volumeutil import (
    ANN_SELECTED_NODE,
    claim_names,
    delays_binding,
    volume_fits_node,
)

__all__ = ["EVENT_VOLUME_CHANGE", "VolumeBinding"]

# A claim, volume or storage class was added or changed (upstream registers PVC, PV,
# StorageClass and CSINode events).
EVENT_VOLUME_CHANGE = "PersistentVolume/All"

CONFLICT = "node(s) had volume node affinity conflict"
BIND_CONFLICT = "node(s) didn't find available persistent volumes to bind"
UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"


@dataclass
class _State:
    bound: list[JSON] = field(default_factory=list)  # the volumes of bound claims
    delayed: list[JSON] = field(default_factory=list)  # unbound WaitForFirstConsumer claims

    def clone(self) -> _State:
        return self


class VolumeBinding(PreFilterPlugin, FilterPlugin, PreBindPlugin):
    """Pods go where their volumes are; unbound delayed claims get the chosen node."""

    name = "VolumeBinding"
    events = frozenset({EVENT_VOLUME_CHANGE, EVENT_NODE_ADD, EVENT_NODE_UPDATE})

    def __init__(self, handle: Handle) -> None:
        super().__init__(handle)
        informers = handle.informers
        self.claims = informers.get("persistentvolumeclaims")
        self.volumes = informers.get("persistentvolumes")
        self.classes = informers.get("storageclasses")
        scheduler: Any = handle

        def changed(*_: Any) -> None:
            # The replay of existing objects comes before the scheduler's queue exists.
            if getattr(scheduler, "queue", None) is not None:
                scheduler.move_all(EVENT_VOLUME_CHANGE)

        for informer in (self.claims, self.volumes, self.classes):
            # Retry the pods waiting on volumes when one changes (EventsToRegister).
            scheduler.watch(informer, changed)

    def pre_filter(
        self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]
    ) -> tuple[set[str] | None, Status | None]:
        """GetPodVolumeClaims: sort the pod's claims into bound and delayed, reject the rest."""
        names = claim_names(pod.pod)
        if not names:
            return None, SKIP
        data = _State()
        for name in names:
            claim = self.claims.get(pod.namespace, name)
            if claim is None:
                return None, Status.unresolvable(f'persistentvolumeclaim "{name}" not found')
            if meta(claim).get("deletionTimestamp"):
                return None, Status.unresolvable(f'persistentvolumeclaim "{name}" is being deleted')
            volume_name = (claim.get("spec") or {}).get("volumeName")
            if volume_name:
                volume = self.volumes.get(None, str(volume_name))
                if volume is None:
                    return None, Status.unresolvable("pvc(s) bound to non-existent pv(s)")
                data.bound.append(volume)
                continue
            class_name = str((claim.get("spec") or {}).get("storageClassName") or "")
            storage_class = self.classes.get(None, class_name) if class_name else None
            if not delays_binding(storage_class):
                return None, Status.unresolvable(UNBOUND_IMMEDIATE)
            data.delayed.append(claim)
        state.data[self.name] = data
        return None, None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        """FindPodVolumes: bound volumes admit the node; delayed claims may go there."""
        data: _State = state.data[self.name]
        for volume in data.bound:
            if not volume_fits_node(volume, node.node):
                return Status.unresolvable(CONFLICT)
        for claim in data.delayed:
            selected = (meta(claim).get("annotations") or {}).get(ANN_SELECTED_NODE)
            if selected and selected != node.name:
                return Status.unresolvable(BIND_CONFLICT)
        return None

    def pre_bind(self, state: CycleState, pod: PodInfo, node_name: str) -> Status | None:
        """Give the delayed claims the node; Wait until they are bound (see the docstring)."""
        data: _State = state.data.get(self.name) or _State()
        if not data.delayed:
            return None
        store = self.handle.store
        for claim in data.delayed:
            ns, name = pod.namespace, meta(claim)["name"]
            if (meta(claim).get("annotations") or {}).get(ANN_SELECTED_NODE) == node_name:
                continue
            try:
                live = store.get("persistentvolumeclaims", ns, name)
                live["metadata"].setdefault("annotations", {})[ANN_SELECTED_NODE] = node_name
                store.update("persistentvolumeclaims", ns, name, live)
            except ApiError as exc:
                return Status(Code.ERROR, (f"binding volumes: {exc}",))
        return Status(Code.WAIT, ("waiting for the pod's volumes to be bound",))
