"""Timing profiles of the simulated cluster.

`upstream` carries upstream's defaults (for fidelity checks); `fast` carries the fast test
settings of the reference document so a whole runbook takes seconds. Pod GC's period and
quarantine are constants upstream (pkg/controller/podgc/gc_controller.go: gcCheckPeriod 20s,
quarantineTime 40s); the fast profile scales them, and says so here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """Every timing the simulated control plane and node agents use, in seconds."""

    name: str
    # kubelet (pkg/kubelet/apis/config/v1beta1/defaults.go)
    node_lease_duration: float
    node_status_update_frequency: float
    node_status_report_frequency: float
    # kube-controller-manager (pkg/controller/nodelifecycle/config/v1alpha1/defaults.go)
    node_monitor_period: float
    node_monitor_grace_period: float
    node_startup_grace_period: float
    node_eviction_rate: float
    secondary_node_eviction_rate: float
    large_cluster_size_threshold: int
    unhealthy_zone_threshold: float
    # kube-apiserver DefaultTolerationSeconds admission
    default_not_ready_toleration_seconds: int
    default_unreachable_toleration_seconds: int
    # pod GC: constants upstream, scaled by the fast profile
    podgc_period: float
    podgc_quarantine: float
    terminated_pod_gc_threshold: int
    # simulated container runtime: Pending -> Running -> Ready
    pod_start_delay: float
    # a restarted kubelet registers its Node after this long (observed upstream: ~20s)
    kubelet_registration_delay: float
    # kubelet probes and container restarts (pkg/kubelet/prober, pkg/kubelet/kuberuntime):
    # a probe's initialDelaySeconds and periodSeconds are multiplied by this (its timeoutSeconds
    # is not: it bounds real I/O on a loaded machine); the crash-loop back-off starts at
    # `container_backoff` and doubles up to `container_backoff_max` (upstream 10s and 300s,
    # pkg/kubelet/kubelet.go backOffPeriod and MaxContainerBackOff).
    probe_time_scale: float = 1.0
    container_backoff: float = 10.0
    container_backoff_max: float = 300.0
    # kube-scheduler's queue (pkg/scheduler/apis/config/v1/defaults.go, podInitialBackoffSeconds
    # and podMaxBackoffSeconds; backend/queue DefaultPodMaxInUnschedulablePodsDuration). kind's
    # scheduler keeps them, so the fast profile does too.
    pod_initial_backoff: float = 1.0
    pod_max_backoff: float = 10.0
    pod_max_in_unschedulable: float = 300.0
    # The Job controller's pod-failure back-off: a failed pod's replacement waits this long,
    # doubling per failure up to 60 times it (upstream 10s and 10 min, job_controller.go
    # DefaultJobPodFailureBackOff and MaxJobPodFailureBackOff).
    job_backoff: float = 10.0

    @property
    def lease_renew_interval(self) -> float:
        """Kubelet renews its Lease every quarter of the lease duration (pkg/kubelet/kubelet.go)."""
        return self.node_lease_duration / 4

    def replace(self, **changes: float | int | str) -> Profile:
        """A copy with some timings changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


UPSTREAM = Profile(
    name="upstream",
    node_lease_duration=40.0,
    node_status_update_frequency=10.0,
    node_status_report_frequency=300.0,
    node_monitor_period=5.0,
    node_monitor_grace_period=50.0,
    node_startup_grace_period=60.0,
    node_eviction_rate=0.1,
    secondary_node_eviction_rate=0.01,
    large_cluster_size_threshold=50,
    unhealthy_zone_threshold=0.55,
    default_not_ready_toleration_seconds=300,
    default_unreachable_toleration_seconds=300,
    podgc_period=20.0,
    podgc_quarantine=40.0,
    terminated_pod_gc_threshold=12500,
    pod_start_delay=1.0,
    kubelet_registration_delay=0.0,
)

# The fast settings in docs/node-failure-semantics.md. The grace period (4s) leaves
# room for three missed renewals (renew every 1s): upstream flapped with a grace period of one
# renewal interval (docs/node-failure-semantics.md, "Observed"), so no profile may go below two.
_FAST_CONTROL_PLANE: dict[str, float | int | str] = {
    "node_monitor_period": 1.0,
    "node_monitor_grace_period": 4.0,
    "node_startup_grace_period": 10.0,
    "node_eviction_rate": 10.0,
    "secondary_node_eviction_rate": 0.1,
    "default_not_ready_toleration_seconds": 10,
    "default_unreachable_toleration_seconds": 10,
    # Scaled: upstream hard-codes 20s and 40s.
    "podgc_period": 1.0,
    "podgc_quarantine": 2.0,
    # Scaled as the kubelet's container back-off is (10s -> 1s).
    "job_backoff": 1.0,
}
_FAST_NODE: dict[str, float | int | str] = {
    "node_lease_duration": 4.0,
    "node_status_update_frequency": 1.0,
    "node_status_report_frequency": 60.0,
    "pod_start_delay": 0.5,
    # Scaled as the node timings are (lease 40s -> 4s): a period of 10s probes every second.
    "probe_time_scale": 0.1,
    "container_backoff": 1.0,
    "container_backoff_max": 30.0,
}
FAST = UPSTREAM.replace(name="fast", **_FAST_CONTROL_PLANE, **_FAST_NODE)

PROFILES: dict[str, Profile] = {p.name: p for p in (UPSTREAM, FAST)}


def get_profile(name: str) -> Profile:
    """The profile called `name`; ValueError naming the accepted names otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        accepted = ", ".join(sorted(PROFILES))
        raise ValueError(f"unknown timing profile {name!r}; accepted: {accepted}") from None
