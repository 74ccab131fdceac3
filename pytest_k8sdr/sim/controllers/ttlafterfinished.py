"""TTL-after-finished controller (pkg/controller/ttlafterfinished/ttlafterfinished_controller.go).

A finished Job (Complete or Failed) with `spec.ttlSecondsAfterFinished` is deleted, in the
foreground (its pods first), that many seconds after its terminal condition's
lastTransitionTime; a UID precondition keeps a new Job of the same name safe. Not modelled:
the controller's own clock-skew warnings.
"""

from __future__ import annotations

import asyncio
import time

from pytest_k8sdr.sim.apimachinery.clock import parse_rfc3339
from pytest_k8sdr.sim.apimachinery.errors import ApiError
from pytest_k8sdr.sim.apimachinery.meta import Key, get_condition, key_of, meta
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.controllers.controller import Controller
from pytest_k8sdr.sim.controllers.job import job_finished
from pytest_k8sdr.sim.controllers.workqueue import WorkQueue

__all__ = ["TTLAfterFinishedController"]

NAME = "ttl-after-finished"


class TTLAfterFinishedController(Controller):
    """Deletes finished Jobs once their ttlSecondsAfterFinished has passed."""

    name = NAME

    def start(self) -> list[asyncio.Task[None]]:
        """Follow Jobs."""
        self.jobs = self.informers.get("jobs")
        self.queue: WorkQueue[Key] = WorkQueue(NAME, self._sync)
        self.watch(self.jobs, self._on_job)
        return [self._spawn(self.queue.run(), "queue")]

    def _on_job(self, etype: str, old: JSON | None, new: JSON | None) -> None:
        if (
            new is not None
            and meta(new).get("deletionTimestamp") is None
            and (new.get("spec") or {}).get("ttlSecondsAfterFinished") is not None
        ):
            self.queue.add(key_of(new))

    def _sync(self, key: Key) -> None:
        job = self.jobs.get(*key)
        if job is None or meta(job).get("deletionTimestamp"):
            return
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        state = job_finished(job)
        if ttl is None or state is None:
            return
        cond = get_condition((job.get("status") or {}).get("conditions"), state) or {}
        finished = parse_rfc3339(cond.get("lastTransitionTime")) or time.time()
        left = finished + int(ttl) - time.time()
        if left > 0:
            self.queue.add_after(key, left + 0.01)
            return
        try:
            self.store.delete(
                "jobs",
                key[0],
                key[1],
                propagation_policy="Foreground",
                preconditions={"uid": meta(job).get("uid")},
            )
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise
