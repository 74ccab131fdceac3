"""The kubelet's prober manager and its workers (pkg/kubelet/prober/prober_manager.go, worker.go).

A worker per container instance and probe type (startup, readiness, liveness) ticks every
`periodSeconds` from the container's start; a tick before `initialDelaySeconds` has passed
probes nothing, and while a startup probe has not succeeded the readiness and liveness
workers wait (worker.go doProbe). A result takes effect after `successThreshold` equal
results in a row (`failureThreshold` for a failure). Initial results as upstream's: readiness
Failure, liveness Success, startup Unknown. Every failed probe records a Warning `Unhealthy`
event "<Type> probe failed: <output>" (prober.go). A liveness or startup failure puts the
worker on hold and asks for the container's restart, which the pod worker carries out
(`containers`); the restarted container gets new workers and initial results, as a new
container ID does upstream.

Periods and initial delays are multiplied by the profile's `probe_time_scale`. Not modelled:
the start-up jitter of a restarted kubelet, `terminationGracePeriodSeconds` of a probe, a
probe's own retries (maxProbeRetries), gRPC health checking (grpc is probed as tcpSocket).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.node.probe import ProbeResult, Result, run_probe
from pytest_k8sdr.sim.profiles import Profile

__all__ = ["PROBE_TYPES", "EventSink", "ProbeManager"]

log = logging.getLogger("pytest_k8sdr.sim.node")

PROBE_TYPES = ("startup", "readiness", "liveness")
_SPEC_KEY = {"startup": "startupProbe", "readiness": "readinessProbe", "liveness": "livenessProbe"}
_INITIAL = {"startup": Result.UNKNOWN, "readiness": Result.FAILURE, "liveness": Result.SUCCESS}

# (pod, container name, event type, reason, message)
EventSink = Callable[[JSON, str, str, str, str], None]


@dataclass
class _Worker:
    uid: str
    container: str
    probe_type: str
    task: asyncio.Task[None] | None = None


class ProbeManager:
    """The probe workers of one kubelet and their cached results.

    `on_change(uid)` is called when a result that the pod status shows changes (a container
    became ready or not, started) or a container must be restarted. `pod_of(uid)` gives the
    kubelet's current view of the pod (its exec-probe annotation may change).
    """

    def __init__(
        self,
        profile: Profile,
        on_change: Callable[[str], None],
        pod_of: Callable[[str], JSON | None],
        events: EventSink,
    ) -> None:
        self.profile = profile
        self.on_change = on_change
        self.pod_of = pod_of
        self.events = events
        self._results: dict[tuple[str, str, str], Result] = {}
        self._workers: dict[tuple[str, str, str], _Worker] = {}
        self._restart: dict[tuple[str, str], str] = {}
        self._session: aiohttp.ClientSession | None = None

    # what the pod status reads

    def ready(self, uid: str, container: str) -> bool:
        """Whether the running container is ready (no readiness probe: once started)."""
        if not self.started(uid, container):
            return False
        result = self._results.get((uid, container, "readiness"))
        return result is None or result is Result.SUCCESS

    def started(self, uid: str, container: str) -> bool:
        """Whether the running container has started (no startup probe: at once)."""
        result = self._results.get((uid, container, "startup"))
        return result is None or result is Result.SUCCESS

    def restarts_wanted(self, uid: str) -> dict[str, str]:
        """The containers of the pod that failed liveness or startup: name -> kill message."""
        return {name: msg for (u, name), msg in self._restart.items() if u == uid}

    def probing(self, uid: str, container: str) -> bool:
        """Whether the container has probe workers (a restarted kubelet has none yet)."""
        return any((uid, container, t) in self._workers for t in PROBE_TYPES)

    # lifecycle (pkg/kubelet/prober/prober_manager.go AddPod / RemovePod)

    def container_started(self, pod: JSON, container: JSON, pod_ip: str) -> None:
        """A container (instance) started: new workers and initial results for its probes."""
        uid = pod["metadata"]["uid"]
        name = str(container.get("name"))
        self.container_stopped(uid, name)
        started = time.monotonic()
        for probe_type in PROBE_TYPES:
            spec = container.get(_SPEC_KEY[probe_type])
            if not spec:
                continue
            key = (uid, name, probe_type)
            self._results[key] = _INITIAL[probe_type]
            worker = _Worker(uid, name, probe_type)
            worker.task = asyncio.create_task(
                self._run(worker, spec, container, pod_ip, started),
                name=f"probe-{probe_type}-{uid[:8]}-{name}",
            )
            self._workers[key] = worker

    def container_stopped(self, uid: str, name: str) -> None:
        """The container was killed or its pod stopped: its workers end, results go."""
        self._restart.pop((uid, name), None)
        for probe_type in PROBE_TYPES:
            key = (uid, name, probe_type)
            self._results.pop(key, None)
            worker = self._workers.pop(key, None)
            if worker is not None and worker.task is not None:
                worker.task.cancel()

    def remove_pod(self, uid: str) -> None:
        """The pod stopped or went away."""
        for u, name, _ in list(self._workers):
            if u == uid:
                self.container_stopped(uid, name)
        for key in [k for k in self._results if k[0] == uid]:
            del self._results[key]

    async def close(self) -> None:
        """End every worker and the probes' HTTP client."""
        tasks = [w.task for w in self._workers.values() if w.task is not None]
        self._workers.clear()
        self._results.clear()
        self._restart.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._session is not None:
            await self._session.close()
            self._session = None

    # the worker (pkg/kubelet/prober/worker.go)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # No connection reuse: every probe opens its own connection, as the kubelet's does
            # (DisableKeepAlives in pkg/probe/http/http.go).
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True, limit=0)
            )
        return self._session

    async def _run(
        self, worker: _Worker, spec: JSON, container: JSON, pod_ip: str, started: float
    ) -> None:
        scale = self.profile.probe_time_scale
        period = max(1, int(spec.get("periodSeconds") or 10)) * scale
        initial_delay = max(0, int(spec.get("initialDelaySeconds") or 0)) * scale
        success_threshold = max(1, int(spec.get("successThreshold") or 1))
        failure_threshold = max(1, int(spec.get("failureThreshold") or 3))
        key = (worker.uid, worker.container, worker.probe_type)
        last: Result | None = None
        run = 0
        tick = started
        while True:
            if time.monotonic() - started >= initial_delay and self._may_probe(worker):
                outcome = await self._probe(worker, spec, container, pod_ip)
                if outcome.result is last:
                    run += 1
                else:
                    last, run = outcome.result, 1
                threshold = success_threshold if last is Result.SUCCESS else failure_threshold
                settled = last is not Result.UNKNOWN and run >= threshold
                if settled and self._set(key, last) and self._hold(worker, last):
                    return
            tick += period
            await asyncio.sleep(max(0.0, tick - time.monotonic()))

    def _may_probe(self, worker: _Worker) -> bool:
        """Readiness and liveness wait for the startup probe; startup stops once it passed."""
        started = self.started(worker.uid, worker.container)
        return not started if worker.probe_type == "startup" else started

    async def _probe(
        self, worker: _Worker, spec: JSON, container: JSON, pod_ip: str
    ) -> ProbeResult:
        pod = self.pod_of(worker.uid) or {}
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        try:
            outcome = await run_probe(
                spec, container, pod_ip, annotations, worker.probe_type, self._client()
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug of ours must not end the worker
            log.warning("probe of %s failed to run: %s", worker.container, exc)
            outcome = ProbeResult(Result.UNKNOWN, str(exc))
        kind = worker.probe_type.capitalize()
        if outcome.result is Result.FAILURE and pod:
            self.events(
                pod,
                worker.container,
                "Warning",
                "Unhealthy",
                f"{kind} probe failed: {outcome.output}",
            )
        elif outcome.result is Result.UNKNOWN and pod:
            self.events(
                pod,
                worker.container,
                "Warning",
                "Unhealthy",
                f"{kind} probe errored and resulted in unknown state: {outcome.output}",
            )
        return outcome

    def _set(self, key: tuple[str, str, str], result: Result) -> bool:
        """Cache a result; whether the worker still owns its key (not stopped meanwhile)."""
        worker = self._workers.get(key)
        if worker is None or worker.task is not asyncio.current_task():
            return False
        if self._results.get(key) is not result:
            self._results[key] = result
            self.on_change(key[0])
        return True

    def _hold(self, worker: _Worker, result: Result) -> bool:
        """A liveness or startup failure: ask for a restart and stop probing this container."""
        if result is not Result.FAILURE or worker.probe_type == "readiness":
            return False
        self._restart[(worker.uid, worker.container)] = (
            f"Container {worker.container} failed {worker.probe_type} probe, will be restarted"
        )
        self.on_change(worker.uid)
        return True
