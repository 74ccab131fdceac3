"""DefaultPreemption: evict lower-priority pods to make room.

pkg/scheduler/framework/plugins/defaultpreemption/default_preemption.go and
pkg/scheduler/framework/preemption/preemption.go.

When no node fits, a pod may preempt pods of lower `spec.priority`. Nodes whose filter status
is UnschedulableAndUnresolvable are skipped ("Preemption is not helpful for scheduling"). On
each other node every lower-priority pod is removed in a dry run; if the pod still does not
fit, that filter status is the node's; with nothing to remove, "No preemption victims found for
incoming pod". Otherwise victims are reprieved, most important first (higher priority, then
earlier start), the PodDisruptionBudget-violating ones first, as long as the pod still fits.
The node chosen (pickOneNodeForPreemption): fewest PDB violations, then the lowest highest
victim priority, the lowest sum of priorities, the fewest victims, the latest start among the
highest-priority victims. Its victims get DisruptionTarget=True (reason PreemptionByScheduler)
and are deleted with their grace period, an event `Preempted` is recorded on each, and the pod
is nominated to the node (status.nominatedNodeName) to be retried when they are gone.
A pod with `preemptionPolicy: Never` does not preempt.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from pytest_k8sdr.sim.apimachinery.errors import ApiError
from pytest_k8sdr.sim.apimachinery.selectors import selector_is_empty, selector_matches
from pytest_k8sdr.sim.controllers.podutil import set_pod_condition
from pytest_k8sdr.sim.controllers.scheduler.framework import (
    EVENT_ASSIGNED_POD_DELETE,
    Code,
    CycleState,
    Diagnosis,
    NodeInfo,
    PodInfo,
    PostFilterPlugin,
    PostFilterResult,
    Status,
    fit_error_message,
)

__all__ = ["DefaultPreemption"]

NOT_HELPFUL = Status.unresolvable("Preemption is not helpful for scheduling")
NO_VICTIMS = Status.unresolvable("No preemption victims found for incoming pod")


@dataclass
class Candidate:
    """A node and the pods to evict there (preemption.go candidate)."""

    node: str
    victims: list[PodInfo]
    pdb_violations: int


def _importance(p: PodInfo) -> tuple[int, str]:
    # MoreImportantPod: higher priority first, then the earlier start.
    return (-p.priority, p.start_time)


class DefaultPreemption(PostFilterPlugin):
    """Preempt lower-priority pods to make room."""

    name = "DefaultPreemption"
    events = frozenset({EVENT_ASSIGNED_POD_DELETE})

    def post_filter(
        self, state: CycleState, pod: PodInfo, statuses: dict[str, Status]
    ) -> tuple[PostFilterResult | None, Status]:
        """Find victims, pick a node, evict them; the message otherwise."""
        ok, why = self._eligible(pod)
        if not ok:
            return None, Status(Code.UNSCHEDULABLE, (f"preemption: {why}",))
        snapshot = self.handle.snapshot
        nodes = snapshot.node_infos()
        diagnosis = Diagnosis(absent_status=NOT_HELPFUL)
        candidates: list[Candidate] = []
        for node in nodes:
            status = statuses.get(node.name)
            if status is None or status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                continue
            candidate, failure = self._select_victims(state, pod, node)
            if candidate is not None:
                candidates.append(candidate)
            elif failure is not None:
                diagnosis.node_to_status[node.name] = failure
        if not candidates:
            message = fit_error_message(len(nodes), diagnosis)
            return None, Status(Code.UNSCHEDULABLE, (f"preemption: {message}",))
        best = self._pick(candidates)
        self._prepare(pod, best)
        return PostFilterResult(best.node), Status(Code.SUCCESS)

    def _eligible(self, pod: PodInfo) -> tuple[bool, str]:
        """PodEligibleToPreemptOthers."""
        if (pod.pod.get("spec") or {}).get("preemptionPolicy") == "Never":
            return False, "not eligible due to preemptionPolicy=Never."
        nominated = (pod.pod.get("status") or {}).get("nominatedNodeName")
        if nominated:
            node = self.handle.snapshot.get(nominated)
            if node is not None and any(
                p.terminating and p.priority < pod.priority for p in node.pods.values()
            ):
                return False, "not eligible due to a terminating pod on the nominated node."
        return True, ""

    def _select_victims(
        self, state: CycleState, pod: PodInfo, node: NodeInfo
    ) -> tuple[Candidate | None, Status | None]:
        """SelectVictimsOnNode."""
        fw = self.handle.framework
        state = state.clone()
        trial = node.clone()
        potential = [p for p in node.pods.values() if p.priority < pod.priority]
        if not potential:
            return None, NO_VICTIMS
        for victim in potential:
            trial.remove_pod(victim.key)
            fw.run_remove_pod(state, pod, victim, trial)
        status = fw.run_filter(state, pod, trial)
        if status is not None:
            return None, status
        potential.sort(key=_importance)
        violating, fine = self._split_by_pdb(potential)
        victims: list[PodInfo] = []
        violations = 0

        def reprieve(p: PodInfo) -> bool:
            trial.add_pod(p)
            fw.run_add_pod(state, pod, p, trial)
            if fw.run_filter(state, pod, trial) is None:
                return True
            trial.remove_pod(p.key)
            fw.run_remove_pod(state, pod, p, trial)
            victims.append(p)
            return False

        for p in violating:
            if not reprieve(p):
                violations += 1
        for p in fine:
            reprieve(p)
        victims.sort(key=_importance)
        return Candidate(node.name, victims, violations), None

    def _split_by_pdb(self, pods: list[PodInfo]) -> tuple[list[PodInfo], list[PodInfo]]:
        """filterPodsWithPDBViolation: which evictions would break a budget."""
        pdbs = list(self.handle.informers.get("poddisruptionbudgets").list())
        allowed = [int((p.get("status") or {}).get("disruptionsAllowed") or 0) for p in pdbs]
        violating: list[PodInfo] = []
        fine: list[PodInfo] = []
        for pod in pods:
            breaks = False
            for i, pdb in enumerate(pdbs):
                if (pdb.get("metadata") or {}).get("namespace") != pod.namespace:
                    continue
                selector = (pdb.get("spec") or {}).get("selector")
                if selector_is_empty(selector) or not selector_matches(selector, pod.labels):
                    continue
                if pod.name in ((pdb.get("status") or {}).get("disruptedPods") or {}):
                    continue
                allowed[i] -= 1
                if allowed[i] < 0:
                    breaks = True
            (violating if breaks else fine).append(pod)
        return violating, fine

    @staticmethod
    def _pick(candidates: list[Candidate]) -> Candidate:
        """The candidate pickOneNodeForPreemption takes, by its criteria in order."""

        def key(c: Candidate) -> tuple[int, int, int, int]:
            top = c.victims[0].priority if c.victims else -(2**31)
            total = sum(v.priority + 2**31 for v in c.victims)
            return (c.pdb_violations, top, total, len(c.victims))

        best = min(key(c) for c in candidates)
        tied = [c for c in candidates if key(c) == best]

        def earliest_top_start(c: Candidate) -> str:
            if not c.victims:
                return ""
            top = c.victims[0].priority
            return min(v.start_time for v in c.victims if v.priority == top)

        # The latest start among the highest-priority victims wins; then the first node.
        return max(tied, key=earliest_top_start)

    def _prepare(self, pod: PodInfo, c: Candidate) -> None:
        """prepareCandidate: DisruptionTarget, delete, event; clear lower nominations."""
        store = self.handle.store
        scheduler = (pod.pod.get("spec") or {}).get("schedulerName") or "default-scheduler"
        for victim in c.victims:
            with contextlib.suppress(ApiError):
                live = store.get("pods", victim.namespace, victim.name)
                if set_pod_condition(
                    live.setdefault("status", {}),
                    {
                        "type": "DisruptionTarget",
                        "status": "True",
                        "reason": "PreemptionByScheduler",
                        "message": f"{scheduler}: preempting to accommodate a higher priority pod",
                    },
                ):
                    store.update("pods", victim.namespace, victim.name, live, subresource="status")
                store.delete("pods", victim.namespace, victim.name)
                self.handle.recorder.record(
                    victim.pod,
                    "Pod",
                    "Normal",
                    "Preempted",
                    f"Preempted by {pod.namespace}/{pod.name} on node {c.node}",
                    "default-scheduler",
                )
        for other in self.handle.nominated_pods_for_node(c.node):
            if other.priority < pod.priority and other.key != pod.key:
                self.handle.clear_nomination(other)
