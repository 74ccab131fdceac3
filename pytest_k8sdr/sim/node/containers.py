"""The containers of a running pod: probe-driven kills and restarts with back-off.

What pkg/kubelet/kuberuntime/kuberuntime_manager.go does for a running pod: computePodActions
kills a container whose liveness or startup probe failed (Normal `Killing` "Container C failed
liveness probe, will be restarted"), and starts a dead container again unless it is in
back-off (doBackOff): the first restart is at once, then each one waits a back-off that starts
at the profile's `container_backoff` (upstream 10s) and doubles up to `container_backoff_max`
(upstream 5m, pkg/kubelet/kubelet.go), measured from the container's finish; it is forgotten
after twice the maximum without a restart (client-go's flowcontrol.Backoff). While waiting the
container shows `waiting: CrashLoopBackOff` "back-off 10s restarting failed container=C
pod=P_NS(UID)" and a Warning `BackOff` event. A killed container reports exit code 137,
reason Error, as its lastState.

A container also exits on its own when its run time is over (`runtime.exit_plan`: reason
Completed for code 0, else Error). What happens next is the pod's restartPolicy
(kuberuntime_manager.go ShouldContainerBeRestarted): Always restarts it, OnFailure only after a
non-zero code, Never leaves it terminated; once every container is terminated for good the
pod's phase is Succeeded, or Failed if any exited non-zero (kubelet_pods.go getPhase).

Not modelled: preStop hooks, a probe's terminationGracePeriodSeconds (a kill is immediate).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from pytest_k8sdr.sim.apimachinery.clock import rfc3339
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.node.podstatus import ContainerReport
from pytest_k8sdr.sim.node.prober import EventSink, ProbeManager
from pytest_k8sdr.sim.node.runtime import PodContainers, Runtime
from pytest_k8sdr.sim.profiles import Profile

__all__ = ["ContainerSync", "finished_phase", "go_duration"]


@dataclass
class _Backoff:
    duration: float
    last_update: float


def go_duration(seconds: float) -> str:
    """A duration as Go's time.Duration prints it: 10s, 1m20s, 5m0s, 500ms."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = round(seconds, 3)
    minutes, rest = divmod(whole, 60)
    text = f"{rest:g}s"
    if minutes:
        hours, minutes = divmod(int(minutes), 60)
        text = f"{minutes}m{text}"
        if hours:
            text = f"{hours}h{text}"
    return text


class ContainerSync:
    """Kills, restarts and reports the containers of one kubelet's running pods."""

    def __init__(
        self, runtime: Runtime, prober: ProbeManager, profile: Profile, events: EventSink
    ) -> None:
        self.runtime = runtime
        self.prober = prober
        self.profile = profile
        self.events = events
        self._backoff: dict[tuple[str, str], _Backoff] = {}

    def started(self, pod: JSON, ip: str) -> None:
        """The pod's containers just started: their events and probes (none on hollow nodes)."""
        if not self.runtime.serve:
            return
        for spec in _container_specs(pod):
            self._started_events(pod, spec)
            self.prober.container_started(pod, spec, ip)

    def stopping(self, pod: JSON) -> None:
        """The pod's running containers are about to be stopped for its deletion.

        kuberuntime_container.go killContainer: Normal `Killing` "Stopping container C" (a probe's
        kill has its own message, in `sync`).
        """
        if not self.runtime.serve:
            return
        running = self.runtime.pods.get(str((pod.get("metadata") or {}).get("uid")))
        if running is None:
            return
        for name, container in running.containers.items():
            if container.running:
                self.events(pod, name, "Normal", "Killing", f"Stopping container {name}")

    def _started_events(self, pod: JSON, spec: JSON) -> None:
        """What a kubelet records as it starts a container, image already on the node.

        pkg/kubelet/images/image_manager.go EnsureImageExists (Pulled "Container image ... already
        present on machine", the pull policy IfNotPresent that kind's preloaded images meet) and
        pkg/kubelet/kuberuntime/kuberuntime_container.go startContainer (Created, Started).
        """
        name = str(spec.get("name"))
        image = str(spec.get("image") or "")
        self.events(
            pod, name, "Normal", "Pulled", f'Container image "{image}" already present on machine'
        )
        self.events(pod, name, "Normal", "Created", f"Created container: {name}")
        self.events(pod, name, "Normal", "Started", f"Started container {name}")

    def forget(self, uid: str) -> None:
        """The pod stopped: its probes and back-offs go."""
        self.prober.remove_pod(uid)
        for key in [k for k in self._backoff if k[0] == uid]:
            del self._backoff[key]

    async def sync(self, pod: JSON, ip: str) -> tuple[dict[str, ContainerReport], float | None]:
        """Kill and restart what must be; each container's report and when to look again."""
        uid = pod["metadata"]["uid"]
        running = self.runtime.pods[uid]
        specs = {str(c.get("name")): c for c in _container_specs(pod)}
        wanted = self.prober.restarts_wanted(uid)
        reports: dict[str, ContainerReport] = {}
        again: float | None = None
        policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
        for name, container in running.containers.items():
            spec = specs.get(name, {})
            if container.running and container.exit_at is not None:
                if container.exit_at <= time.time():
                    self.prober.container_stopped(uid, name)
                    await self.runtime.kill_container(uid, name, exit_code=container.exit_code)
                else:
                    at = time.monotonic() + container.exit_at - time.time()
                    again = at if again is None else min(again, at)
            if container.running and self.runtime.serve and not self.prober.probing(uid, name):
                # Adopted by a restarted kubelet: its probes start over, as upstream's do.
                self.prober.container_started(pod, spec, ip)
            if container.running and name in wanted:
                self.events(pod, name, "Normal", "Killing", wanted[name])
                self.prober.container_stopped(uid, name)
                await self.runtime.kill_container(uid, name)
            waiting = ("", "")
            code = int((container.last_terminated or {}).get("exitCode") or 0)
            if not container.running and (
                policy == "Never" or (policy == "OnFailure" and not code)
            ):
                reports[name] = self._report(running, name, waiting, terminated=True)
                continue
            if not container.running:
                wait = self._wait(uid, name, container.finished_at or time.time())
                if wait <= 0:
                    await self.runtime.start_container(uid, name)
                    self.prober.container_started(pod, spec, ip)
                    self._started_events(pod, spec or {"name": name})
                else:
                    backoff = go_duration(self._backoff[(uid, name)].duration)
                    waiting = (
                        "CrashLoopBackOff",
                        f"back-off {backoff} restarting failed container={name} "
                        f"pod={_format_pod(pod)}",
                    )
                    self.events(
                        pod,
                        name,
                        "Warning",
                        "BackOff",
                        f"Back-off restarting failed container {name} in pod {_format_pod(pod)}",
                    )
                    at = time.monotonic() + wait
                    again = at if again is None else min(again, at)
            reports[name] = self._report(running, name, waiting)
        return reports, again

    def _wait(self, uid: str, name: str, finished_at: float) -> float:
        """Seconds left of the container's back-off (<= 0: restart now, and back off more)."""
        now = time.time()
        entry = self._backoff.get((uid, name))
        maximum = self.profile.container_backoff_max
        if entry is not None and now - entry.last_update <= 2 * maximum:
            left = finished_at + entry.duration - now
            if left > 0:
                return left
            entry.duration = min(entry.duration * 2, maximum)
            entry.last_update = now
            return 0.0
        self._backoff[(uid, name)] = _Backoff(min(self.profile.container_backoff, maximum), now)
        return 0.0

    def _report(
        self,
        running: PodContainers,
        name: str,
        waiting: tuple[str, str],
        *,
        terminated: bool = False,
    ) -> ContainerReport:
        container = running.containers[name]
        if terminated:
            return ContainerReport(
                running=False,
                ready=False,
                started=False,
                started_at=rfc3339(container.started_at),
                restart_count=container.restart_count,
                terminated=container.last_terminated,
            )
        return ContainerReport(
            running=container.running,
            ready=container.running and self.prober.ready(running.uid, name),
            started=container.running and self.prober.started(running.uid, name),
            started_at=rfc3339(container.started_at),
            restart_count=container.restart_count,
            last_terminated=container.last_terminated,
            waiting_reason=waiting[0],
            waiting_message=waiting[1],
        )


def finished_phase(reports: dict[str, ContainerReport]) -> str | None:
    """Succeeded or Failed once every container is terminated for good, else None."""
    if not reports or any(r.terminated is None for r in reports.values()):
        return None
    failed = any(int((r.terminated or {}).get("exitCode") or 0) for r in reports.values())
    return "Failed" if failed else "Succeeded"


def _container_specs(pod: JSON) -> list[JSON]:
    return [c for c in (pod.get("spec") or {}).get("containers") or [] if c.get("name")]


def _format_pod(pod: JSON) -> str:
    """pkg/kubelet/util/format.Pod: name_namespace(uid)."""
    meta = pod.get("metadata") or {}
    return f"{meta.get('name')}_{meta.get('namespace')}({meta.get('uid')})"
