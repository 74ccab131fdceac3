"""The pod status a kubelet reports (pkg/kubelet/status, kubelet_pods.go generateAPIPodStatus).

`pod_status` builds it for a state: pending (ContainerCreating), running (ready), down (the
runtime is down: running but not ready) or terminated (Completed). A running pod's containers
may be reported one by one (`ContainerReport`: the prober's ready and started, restarts, a
crash-loop back-off); the pod is Ready when all of them are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_k8sdr.sim.apimachinery.clock import rfc3339
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.node.nodespec import NodeSpec

__all__ = ["POD_CONDITIONS", "ContainerReport", "pod_signature", "pod_status"]

POD_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")


@dataclass(frozen=True)
class ContainerReport:
    """One container of a running pod as the kubelet sees it (runtime and prober)."""

    running: bool
    ready: bool
    started: bool
    started_at: str
    restart_count: int = 0
    last_terminated: JSON | None = None
    waiting_reason: str = ""
    waiting_message: str = ""
    # The terminated state of a container that exited for good (restartPolicy Never/OnFailure).
    terminated: JSON | None = None


def pod_status(
    spec: NodeSpec,
    pod: JSON,
    ip: str,
    state: str,
    reports: Mapping[str, ContainerReport] | None = None,
    phase: str | None = None,
) -> JSON:
    """The status a kubelet reports for the pod in `state`: pending|running|down|terminated.

    `reports` (state running) gives each container as given instead of ready; `phase`
    (Succeeded or Failed, with reports) says every container has exited for good.
    """
    status = pod.get("status") or {}
    now = rfc3339()
    containers = [c for c in (pod.get("spec") or {}).get("containers") or [] if c.get("name")]
    names = " ".join(c["name"] for c in containers)
    started_at = now
    statuses = []
    for c in containers:
        old: JSON = next(
            (s for s in status.get("containerStatuses") or [] if s.get("name") == c["name"]), {}
        )
        prior_state = old.get("state") or {}
        started_at = (prior_state.get("running") or prior_state.get("terminated") or {}).get(
            "startedAt"
        ) or now
        entry: JSON = {
            "name": c["name"],
            "image": c.get("image", ""),
            "imageID": f"k8sdr-sim://{c.get('image', '')}",
            "restartCount": 0,
        }
        if state == "pending":
            entry.update(
                ready=False,
                started=False,
                state={"waiting": {"reason": "ContainerCreating"}},
            )
        elif state == "running" and reports and c["name"] in reports:
            _report(entry, pod, c["name"], reports[c["name"]])
        else:
            entry["containerID"] = f"k8sdr-sim://{pod['metadata']['uid'][:13]}-{c['name']}"
            if state == "running":
                entry.update(ready=True, started=True, state={"running": {"startedAt": started_at}})
            elif state == "down":
                entry.update(
                    ready=False, started=True, state={"running": {"startedAt": started_at}}
                )
            else:
                entry.update(
                    ready=False,
                    started=False,
                    state={
                        "terminated": {
                            "exitCode": 0,
                            "reason": "Completed",
                            "startedAt": started_at,
                            "finishedAt": now,
                        }
                    },
                )
        statuses.append(entry)
    ready = state == "running" and not phase and all(s.get("ready") for s in statuses)
    unready = " ".join(s["name"] for s in statuses if not s.get("ready"))
    completed = state == "terminated" or phase == "Succeeded"
    not_ready_reason = "PodCompleted" if completed else "ContainersNotReady"
    not_ready_message = (
        ""
        if completed
        else f"containers with unready status: [{unready if state == 'running' else names}]"
    )
    sandbox_gone = state == "terminated" or phase is not None
    conds: dict[str, tuple[str, str, str]] = {
        "PodReadyToStartContainers": ("False" if sandbox_gone else "True", "", ""),
        "Initialized": ("True", "", ""),
        "ContainersReady": ("True", "", "")
        if ready
        else ("False", not_ready_reason, not_ready_message),
        "Ready": ("True", "", "") if ready else ("False", not_ready_reason, not_ready_message),
    }
    old_conds = {c.get("type"): c for c in status.get("conditions") or []}
    conditions = []
    for ctype in POD_CONDITIONS:
        value, reason, message = conds[ctype]
        prior = old_conds.get(ctype) or {}
        cond: JSON = {
            "type": ctype,
            "status": value,
            "lastProbeTime": None,
            "lastTransitionTime": prior.get("lastTransitionTime")
            if prior.get("status") == value
            else now,
        }
        # null removes what an earlier state left behind (conditions merge by type).
        cond["reason"] = reason or None
        cond["message"] = message or None
        conditions.append(cond)
    if phase is None:
        phase = {"pending": "Pending", "running": "Running", "down": "Running"}.get(
            state, "Succeeded"
        )
    result: JSON = {
        "phase": phase,
        "conditions": conditions,
        "hostIP": spec.address,
        "hostIPs": [{"ip": spec.address}],
        "startTime": status.get("startTime") or now,
        "containerStatuses": statuses,
        "qosClass": status.get("qosClass") or "BestEffort",
    }
    if ip:
        result["podIP"] = ip
        result["podIPs"] = [{"ip": ip}]
    return result


def _report(entry: JSON, pod: JSON, name: str, report: ContainerReport) -> None:
    """Fill a container's status from its report (kubelet_pods.go convertToAPIContainerStatuses)."""
    entry["restartCount"] = report.restart_count
    restarted = f"-{report.restart_count}" if report.restart_count else ""
    entry["containerID"] = f"k8sdr-sim://{pod['metadata']['uid'][:13]}-{name}{restarted}"
    if report.terminated is not None:
        entry.update(ready=False, started=False, state={"terminated": dict(report.terminated)})
        if report.restart_count and report.last_terminated is not None:
            entry["lastState"] = {"terminated": dict(report.last_terminated)}
        return
    if report.running:
        entry.update(
            ready=report.ready,
            started=report.started,
            state={"running": {"startedAt": report.started_at}},
        )
    else:
        waiting: JSON = {"reason": report.waiting_reason or "ContainerCreating"}
        if report.waiting_message:
            waiting["message"] = report.waiting_message
        entry.update(ready=False, started=False, state={"waiting": waiting})
    if report.last_terminated is not None:
        entry["lastState"] = {"terminated": dict(report.last_terminated)}


def pod_signature(status: JSON) -> Any:
    """What a status report compares: phase, IP, condition and container states."""
    return (
        status.get("phase"),
        status.get("podIP"),
        sorted(
            (c.get("type"), c.get("status"))
            for c in status.get("conditions") or []
            if c.get("type") in POD_CONDITIONS
        ),
        sorted(
            (
                s.get("name"),
                bool(s.get("ready")),
                bool(s.get("started")),
                int(s.get("restartCount") or 0),
                tuple(sorted((s.get("state") or {}).keys())),
                ((s.get("state") or {}).get("waiting") or {}).get("reason"),
            )
            for s in status.get("containerStatuses") or []
        ),
    )
