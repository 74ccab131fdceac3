"""Job controller (pkg/controller/job/job_controller.go), NonIndexed completion mode.

Modelled: pods from the template with the Job's labels, a controller ownerReference and the
`batch.kubernetes.io/job-tracking` finalizer, which the controller removes once it has
counted the pod; up to `parallelism` active pods while fewer than `completions` succeeded
(with no `completions`, until one pod succeeds); `status.active/ready/terminating/succeeded/
failed/startTime/completionTime`; a failed pod's replacement waits the pod-failure back-off
(upstream 10s doubling to 6m, `Profile.job_backoff`); `backoffLimit` (failed pods, plus the
container restarts of `OnFailure` pods) and `activeDeadlineSeconds`, ending the Job with
`FailureTarget` then `Failed` (reasons `BackoffLimitExceeded`, `DeadlineExceeded`) once its
pods are gone; success as `SuccessCriteriaMet` then `Complete` (reason `CompletionsReached`)
with `completionTime`; `suspend` (active pods deleted, `Suspended` condition). With
`podReplacementPolicy: TerminatingOrFailed` (the default) a pod being deleted counts as
failed and is replaced at once, so a Job whose pod sits Terminating on a dead node gets a
new one (isPodFailed). Not modelled: Indexed completion mode, podFailurePolicy,
successPolicy, backoffLimitPerIndex, managedBy, orphan adoption.
"""

from __future__ import annotations

import time

from pytest_k8sdr.sim.apimachinery.clock import now_rfc3339, parse_rfc3339
from pytest_k8sdr.sim.apimachinery.meta import Key, get_condition, is_terminating, key_of, meta
from pytest_k8sdr.sim.apimachinery.selectors import selector_matches
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.controllers.controller import Context, OwnerController, ignore_not_found
from pytest_k8sdr.sim.controllers.podutil import pod_is_ready, pod_phase
from pytest_k8sdr.sim.controllers.replicaset import pod_from_template

__all__ = ["JOB_TRACKING_FINALIZER", "JobController", "job_finished"]

NAME = "job"
COMPONENT = "job-controller"
JOB_TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
# DefaultJobPodFailureBackOff is 10s, MaxJobPodFailureBackOff 10 min (job_controller.go).
MAX_BACKOFF_FACTOR = 60


def job_finished(job: JSON) -> str | None:
    """The Job's terminal condition ("Complete" or "Failed") when it is True, else None."""
    for ctype in ("Complete", "Failed"):
        cond = get_condition((job.get("status") or {}).get("conditions"), ctype)
        if cond and cond.get("status") == "True":
            return ctype
    return None


def _condition(ctype: str, reason: str, message: str, status: str = "True") -> JSON:
    now = now_rfc3339()
    return {
        "type": ctype,
        "status": status,
        "lastProbeTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }


def _set_condition(conditions: list[JSON], cond: JSON) -> bool:
    """Add or update a condition of that type; True if it changed."""
    for i, old in enumerate(conditions):
        if old.get("type") != cond["type"]:
            continue
        if old.get("status") == cond["status"] and old.get("reason") == cond["reason"]:
            return False
        conditions[i] = cond
        return True
    conditions.append(cond)
    return True


def _restarts(pod: JSON) -> int:
    status = pod.get("status") or {}
    return sum(
        int(s.get("restartCount") or 0)
        for key in ("initContainerStatuses", "containerStatuses")
        for s in status.get(key) or []
    )


class JobController(OwnerController):
    """Runs each Job's pods to `completions` within `backoffLimit`."""

    name = NAME
    plural = "jobs"
    kind = "Job"
    api_version = "batch/v1"
    component = COMPONENT

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        # Pod-failure back-off per Job: (failures since the last success, last failure time).
        self._backoff: dict[str, tuple[int, float]] = {}
        self._deleted: dict[Key, str] = {}

    def _on_owner(self, etype: str, old: JSON | None, new: JSON | None) -> None:
        obj = new or old or {}
        if new is None:
            self._deleted[key_of(obj)] = str(meta(obj).get("uid"))
        self.queue.add(key_of(obj))

    def _selected(self, job: JSON) -> list[JSON]:
        selector = (job.get("spec") or {}).get("selector")
        return [p for p in self._owned(job) if selector_matches(selector, meta(p).get("labels"))]

    def _release(self, pods: list[JSON]) -> None:
        """Remove the tracking finalizer from the pods that still carry it."""
        for pod in pods:
            if JOB_TRACKING_FINALIZER not in (meta(pod).get("finalizers") or []):
                continue
            ns, name = str(meta(pod).get("namespace")), str(meta(pod)["name"])

            def drop(ns: str = ns, name: str = name) -> None:
                live = self.store.get("pods", ns, name)
                live["metadata"]["finalizers"] = [
                    f
                    for f in live["metadata"].get("finalizers") or []
                    if f != JOB_TRACKING_FINALIZER
                ]
                self.store.update("pods", ns, name, live)

            ignore_not_found(drop)

    def _sync(self, key: Key) -> None:
        job = self.owners.get(*key)
        if job is None:
            uid = self._deleted.pop(key, None)
            if uid is not None:
                self._backoff.pop(uid, None)
                self._release(list(self.children_by_owner.get(uid, {}).values()))
            return
        pods = self._selected(job)
        if job_finished(job):
            self._release(pods)
            return
        uid = str(meta(job).get("uid"))
        spec = job.get("spec") or {}
        old_status = job.get("status") or {}
        status: JSON = {k: v for k, v in old_status.items()}
        conditions = [dict(c) for c in old_status.get("conditions") or []]
        replace_terminating = spec.get("podReplacementPolicy", "TerminatingOrFailed") != "Failed"
        wall = time.time()

        # Count the pods that finished (job_controller.go trackJobStatusAndRemoveFinalizers).
        new_succeeded: list[JSON] = []
        new_failed: list[JSON] = []
        for pod in pods:
            if JOB_TRACKING_FINALIZER not in (meta(pod).get("finalizers") or []):
                continue
            phase = pod_phase(pod)
            if phase == "Succeeded":
                new_succeeded.append(pod)
            elif phase == "Failed" or (
                replace_terminating and is_terminating(pod) and phase != "Succeeded"
            ):
                new_failed.append(pod)
        self._release(new_succeeded + new_failed)
        succeeded = int(old_status.get("succeeded") or 0) + len(new_succeeded)
        failed = int(old_status.get("failed") or 0) + len(new_failed)
        counted = {meta(p).get("uid") for p in new_succeeded + new_failed}
        failures, last_failure = self._backoff.get(uid, (0, 0.0))
        if new_succeeded:
            failures = 0
        if new_failed:
            failures += len(new_failed)
            last_failure = wall
        self._backoff[uid] = (failures, last_failure)

        active = [
            p
            for p in pods
            if pod_phase(p) not in ("Succeeded", "Failed")
            and not is_terminating(p)
            and meta(p).get("uid") not in counted
        ]
        terminating = [
            p for p in pods if is_terminating(p) and pod_phase(p) not in ("Succeeded", "Failed")
        ]
        suspended = bool(spec.get("suspend"))
        if not suspended and not status.get("startTime"):
            status["startTime"] = now_rfc3339()

        # Success and failure criteria (interim conditions first, as delayTerminalCondition).
        completions = spec.get("completions")
        parallelism = int(spec.get("parallelism", 1))
        interim = next(
            (
                c["type"]
                for c in conditions
                if c.get("type") in ("SuccessCriteriaMet", "FailureTarget")
                and c.get("status") == "True"
            ),
            None,
        )
        recheck: float | None = None
        if interim is None:
            backoff_limit = int(spec.get("backoffLimit", 6))
            on_failure = [
                p for p in active if ((p.get("spec") or {}).get("restartPolicy")) == "OnFailure"
            ]
            restarts = sum(_restarts(p) for p in on_failure)
            past_on_failure = (
                restarts > 0 if backoff_limit == 0 else restarts >= backoff_limit
            ) and bool(on_failure)
            deadline = spec.get("activeDeadlineSeconds")
            started = parse_rfc3339(status.get("startTime"))
            if failed > backoff_limit or past_on_failure:
                interim = "FailureTarget"
                reason, message = (
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                )
            elif (
                deadline is not None
                and started is not None
                and not suspended
                and (started + int(deadline) <= wall)
            ):
                interim = "FailureTarget"
                reason, message = (
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                )
            elif (completions is not None and succeeded >= int(completions)) or (
                completions is None and succeeded > 0 and not active
            ):
                interim = "SuccessCriteriaMet"
                reason, message = "CompletionsReached", "Reached expected number of succeeded pods"
            if deadline is not None and started is not None and interim is None:
                recheck = started + int(deadline) - wall
            if interim is not None:
                _set_condition(conditions, _condition(interim, reason, message))
        else:
            cond = get_condition(conditions, interim) or {}
            reason, message = str(cond.get("reason")), str(cond.get("message"))

        if interim is not None:
            # The Job is done: its remaining active pods go; it ends once none is left.
            self._delete_pods(job, active)
            if not active and not terminating:
                terminal = "Complete" if interim == "SuccessCriteriaMet" else "Failed"
                _set_condition(conditions, _condition(terminal, reason, message))
                if terminal == "Complete":
                    status["completionTime"] = now_rfc3339()
                    self._event(job, "Normal", "Completed", "Job completed")
                else:
                    self._event(job, "Warning", reason, message)
            active = []
        elif suspended:
            self._delete_pods(job, active)
            active = []
            if _set_condition(conditions, _condition("Suspended", "JobSuspended", "Job suspended")):
                self._event(job, "Normal", "Suspended", "Job suspended")
            status.pop("startTime", None)
        else:
            if get_condition(conditions, "Suspended") and _set_condition(
                conditions, _condition("Suspended", "JobResumed", "Job resumed", "False")
            ):
                self._event(job, "Normal", "Resumed", "Job resumed")
            if completions is None:
                want = len(active) if succeeded > 0 else parallelism
            else:
                want = max(0, min(parallelism, int(completions) - succeeded))
            # Pods being deleted still count against parallelism with policy Failed.
            busy = len(active) + (0 if replace_terminating else len(terminating))
            missing = want - busy
            if missing > 0:
                wait = 0.0
                if failures > 0:
                    base = self.profile.job_backoff
                    delay = min(base * 2 ** (failures - 1), base * MAX_BACKOFF_FACTOR)
                    wait = last_failure + delay - wall
                if wait > 0:
                    recheck = wait if recheck is None else min(recheck, wait)
                else:
                    for _ in range(missing):
                        self._create_pod(job)
            elif missing < 0:
                surplus = sorted(active, key=lambda p: pod_is_ready(p))[:-missing]
                self._delete_pods(job, surplus)
                active = [p for p in active if p not in surplus]
        status["active"] = len(active) if not (interim or suspended) else 0
        status["ready"] = sum(1 for p in active if pod_is_ready(p))
        status["terminating"] = len(terminating)
        status["succeeded"] = succeeded
        status["failed"] = failed
        status["uncountedTerminatedPods"] = {}
        for field in ("active", "succeeded", "failed"):
            if not status[field]:
                del status[field]
        if conditions:
            status["conditions"] = conditions
        if recheck is not None:
            self.queue.add_after(key, max(recheck, 0.0) + 0.01)
        if status != old_status:
            self._write_status(key, status)

    def _create_pod(self, job: JSON) -> None:
        spec = job.get("spec") or {}
        pod = pod_from_template(spec.get("template") or {}, job, "batch/v1", self.kind)
        pod["metadata"]["finalizers"] = [
            *pod["metadata"].get("finalizers", []),
            JOB_TRACKING_FINALIZER,
        ]
        created = self.store.create("pods", meta(job).get("namespace"), pod)
        self._event(job, "Normal", "SuccessfulCreate", f"Created pod: {meta(created)['name']}")

    def _delete_pods(self, job: JSON, pods: list[JSON]) -> None:
        for pod in pods:
            self._delete_child(job, key_of(pod))
