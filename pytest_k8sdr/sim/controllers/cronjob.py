"""CronJob controller (pkg/controller/cronjob/cronjob_controllerv2.go).

Schedules are read in the controller manager's clock (`Context.clock`, which
`SimCluster.advance_clock` moves forward, so a test jumps to the next activation instead of
waiting for it) and the CronJob's `timeZone` (else the process's local zone). At each
activation the most recent missed time is run once: a Job named `<name>-<minutes since the
epoch>` from the job template, owned by the CronJob, annotated with
`batch.kubernetes.io/cronjob-scheduled-timestamp`; `status.lastScheduleTime` and
`status.active` follow. `startingDeadlineSeconds` (a time missed by more is skipped, event
`MissSchedule`), `concurrencyPolicy` Allow / Forbid (skip while a Job is active) / Replace
(delete the active Jobs, then create), `suspend`, `status.lastSuccessfulTime`
(`SawCompletedJob` events) and the history limits (the oldest finished Jobs beyond
`successfulJobsHistoryLimit` / `failedJobsHistoryLimit` deleted, in the background) are
modelled. Not modelled: the `TooManyMissedTimes` warning (more than 100 missed times are
counted, not reported).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from pytest_k8sdr.sim.apimachinery.clock import parse_rfc3339, rfc3339
from pytest_k8sdr.sim.apimachinery.cron import CronError, parse_schedule, zone
from pytest_k8sdr.sim.apimachinery.errors import ApiError
from pytest_k8sdr.sim.apimachinery.meta import Key, key_of, meta, owner_reference
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.controllers.controller import OwnerController
from pytest_k8sdr.sim.controllers.job import job_finished

__all__ = ["SCHEDULED_TIMESTAMP_ANNOTATION", "CronJobController"]

NAME = "cronjob"
COMPONENT = "cronjob-controller"
SCHEDULED_TIMESTAMP_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
# mostRecentScheduleTime gives up counting after this many missed times.
_MAX_MISSED = 100_000


class CronJobController(OwnerController):
    """Creates each CronJob's Jobs at its scheduled times."""

    name = NAME
    plural = "cronjobs"
    kind = "CronJob"
    api_version = "batch/v1"
    component = COMPONENT
    child_plural = "jobs"
    deleted_message = "Deleted job {name}"

    def start(self) -> list[asyncio.Task[None]]:
        """Follow CronJobs and their Jobs; look again when the clock is advanced."""
        tasks = super().start()
        self.on_stop(self.ctx.clock.on_advance(self._all))
        return tasks

    def _all(self) -> None:
        for cj in list(self.owners.list()):
            key = key_of(cj)
            self.queue.forget(key)
            self.queue.add(key)

    def _sync(self, key: Key) -> None:
        cj = self.owners.get(*key)
        if cj is None:
            return
        old_status = cj.get("status") or {}
        status: JSON = dict(old_status)
        owned = self._owned(cj)
        by_name = {meta(j)["name"]: j for j in owned}
        # Keep status.active to the Jobs still running (syncCronJob's first half).
        active_refs: list[JSON] = []
        for ref in old_status.get("active") or []:
            job = by_name.get(str(ref.get("name")))
            if job is None or job_finished(job):
                if job is not None:
                    self._saw_completed(cj, job, status)
                continue
            active_refs.append(ref)
        listed = {r.get("name") for r in active_refs}
        for job in owned:
            if not job_finished(job) and meta(job)["name"] not in listed:
                active_refs.append(_job_ref(job))
        for job in owned:
            if job_finished(job) == "Complete":
                done = parse_rfc3339((job.get("status") or {}).get("completionTime"))
                last = parse_rfc3339(status.get("lastSuccessfulTime"))
                if done is not None and (last is None or done > last):
                    status["lastSuccessfulTime"] = rfc3339(done)
        status["active"] = active_refs
        recheck: float | None = None
        if not meta(cj).get("deletionTimestamp"):
            recheck = self._schedule(cj, status, by_name)
            self._clean_history(cj)
        if not status.get("active"):
            status.pop("active", None)
        if recheck is not None:
            self.queue.add_after(key, max(recheck, 0.0) + 0.01)
        if status != old_status:
            self._write_status(key, status)

    def _saw_completed(self, cj: JSON, job: JSON, status: JSON) -> None:
        self._event(
            cj,
            "Normal",
            "SawCompletedJob",
            f"Saw completed job: {meta(job)['name']}, condition: {job_finished(job)}",
        )

    def _schedule(self, cj: JSON, status: JSON, by_name: dict[str, JSON]) -> float | None:
        """Run the most recent missed time, if any; seconds until the next one."""
        spec = cj.get("spec") or {}
        try:
            tz = zone(spec.get("timeZone"))
        except CronError:
            self._event(
                cj, "Warning", "UnknownTimeZone", f"invalid timeZone: {spec.get('timeZone')!r}"
            )
            return None
        try:
            schedule = parse_schedule(str(spec.get("schedule", "")))
        except CronError as exc:
            self._event(
                cj,
                "Warning",
                "UnparseableSchedule",
                f"unparseable schedule: {spec.get('schedule')!r} : {exc}",
            )
            return None
        now = self.ctx.clock.now()
        if spec.get("suspend"):
            return None
        earliest = parse_rfc3339(status.get("lastScheduleTime")) or parse_rfc3339(
            meta(cj).get("creationTimestamp")
        )
        if earliest is None:
            earliest = now
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None:
            earliest = max(earliest, now - int(deadline))
        scheduled: float | None = None
        t = schedule.next(earliest, tz)
        for _ in range(_MAX_MISSED):
            if t is None or t > now:
                break
            scheduled = t
            t = schedule.next(t, tz)
        after = None if t is None else t - now
        if scheduled is None:
            return after
        if deadline is not None and scheduled < now - int(deadline):
            self._event(
                cj,
                "Warning",
                "MissSchedule",
                f"Missed scheduled time to start a job: {_go_time(scheduled, tz)}",
            )
            return after
        name = f"{meta(cj)['name']}-{int(scheduled // 60)}"
        if name in by_name:
            return after
        policy = spec.get("concurrencyPolicy", "Allow")
        if policy == "Forbid" and status.get("active"):
            return after
        if policy == "Replace":
            for ref in list(status.get("active") or []):
                self._delete_job(cj, str(ref.get("name")))
            status["active"] = []
        job = self._job_from_template(cj, name, scheduled, tz)
        try:
            created = self.store.create("jobs", meta(cj).get("namespace"), job)
        except ApiError as exc:
            if exc.code != 409:
                raise
            return after
        self._event(cj, "Normal", "SuccessfulCreate", f"Created job {name}")
        status["active"] = [*(status.get("active") or []), _job_ref(created)]
        status["lastScheduleTime"] = rfc3339(scheduled)
        return after

    def _job_from_template(self, cj: JSON, name: str, scheduled: float, tz: object) -> JSON:
        """getJobFromTemplate2."""
        template = (cj.get("spec") or {}).get("jobTemplate") or {}
        tmeta = template.get("metadata") or {}
        annotations = dict(tmeta.get("annotations") or {})
        when = datetime.fromtimestamp(scheduled, tz)  # type: ignore[arg-type]
        annotations[SCHEDULED_TIMESTAMP_ANNOTATION] = when.isoformat().replace("+00:00", "Z")
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": name,
                "labels": dict(tmeta.get("labels") or {}),
                "annotations": annotations,
                "ownerReferences": [owner_reference(cj, "batch/v1", self.kind)],
            },
            "spec": dict(template.get("spec") or {}),
        }

    def _clean_history(self, cj: JSON) -> None:
        """cleanupFinishedJobs: the oldest finished Jobs beyond the history limits."""
        spec = cj.get("spec") or {}
        owned = self._owned(cj)
        for state, limit_field in (
            ("Complete", "successfulJobsHistoryLimit"),
            ("Failed", "failedJobsHistoryLimit"),
        ):
            limit = spec.get(limit_field)
            if limit is None:
                continue
            done = [
                j
                for j in owned
                if job_finished(j) == state and not meta(j).get("deletionTimestamp")
            ]
            if len(done) <= int(limit):
                continue
            done.sort(
                key=lambda j: (
                    parse_rfc3339((j.get("status") or {}).get("startTime"))
                    or parse_rfc3339(meta(j).get("creationTimestamp"))
                    or 0.0
                )
            )
            for job in done[: len(done) - int(limit)]:
                self._delete_job(cj, meta(job)["name"])

    def _delete_job(self, cj: JSON, name: str) -> None:
        self._delete_child(cj, (key_of(cj)[0], name), propagation_policy="Background")


def _job_ref(job: JSON) -> JSON:
    """getRef: an ObjectReference to the Job."""
    m = meta(job)
    return {
        "kind": "Job",
        "namespace": m.get("namespace"),
        "name": m["name"],
        "uid": m.get("uid"),
        "apiVersion": "batch/v1",
        "resourceVersion": m.get("resourceVersion"),
    }


def _go_time(ts: float, tz: object) -> str:
    """A time as Go's time.Time prints it: 2006-01-02 15:04:05 -0700 MST."""
    when = datetime.fromtimestamp(ts, tz)  # type: ignore[arg-type]
    return when.strftime("%Y-%m-%d %H:%M:%S %z ") + (when.tzname() or "")
