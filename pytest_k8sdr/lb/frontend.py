"""The load balancer in front of a workload, chosen by the settings, and its traffic probe."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pytest_k8sdr.cluster import Cluster
from pytest_k8sdr.config import Settings, validate
from pytest_k8sdr.lb.base import LoadBalancer
from pytest_k8sdr.lb.errors import LBConfigError
from pytest_k8sdr.lb.haproxy import HAProxyLB
from pytest_k8sdr.lb.hosts import DockerExecHost, LocalHost
from pytest_k8sdr.lb.managed import ManagedNginx
from pytest_k8sdr.lb.nginx import NginxLB
from pytest_k8sdr.lb.probe import TrafficProbe
from pytest_k8sdr.undo import UndoStack
from pytest_k8sdr.workloads import Workload

UPSTREAM_HEADER = "X-Upstream-Addr"


@dataclass
class Frontend:
    """A load balancer, the URL that goes through it, and what to stop afterwards.

    `probe_listeners` are given every probe made (the test's recorder reports its figures).
    """

    lb: LoadBalancer
    url: str
    managed: ManagedNginx | None = None
    probe_listeners: list[Callable[[TrafficProbe], None]] = field(default_factory=list)

    def probe(self, *, rate: float = 50.0, timeout: float = 2.0) -> TrafficProbe:
        """A traffic probe through the load balancer (not started)."""
        probe = TrafficProbe(self.url, rate=rate, timeout=timeout, upstream_header=UPSTREAM_HEADER)
        for listener in self.probe_listeners:
            listener(probe)
        return probe

    def close(self) -> None:
        """Stop a load balancer this frontend started."""
        if self.managed is not None:
            self.managed.stop()


def worker_nodes(cluster: Cluster) -> dict[str, str]:
    """Worker node name -> InternalIP (control-plane nodes are not behind the LB)."""
    return {
        n.name: n.internal_ip
        for n in cluster.nodes()
        if n.internal_ip
        and "node-role.kubernetes.io/control-plane" not in n.labels
        and "node-role.kubernetes.io/master" not in n.labels
    }


def open_frontend(
    settings: Settings,
    cluster: Cluster,
    workload: Workload,
    workdir: Path,
    undo: UndoStack,
    *,
    backend: str,
) -> Frontend:
    """The LB in front of `workload` as the settings ask; LBConfigError when there is none."""
    kind = settings.lb
    if kind == "auto":
        kind = "managed" if backend == "sim" else "none"
    if kind == "none":
        raise LBConfigError(
            "no load balancer configured: set --k8sdr-lb (nginx, haproxy, managed) and its "
            "lb_* settings"
        )
    addresses = worker_nodes(cluster)
    if kind == "managed":
        if workload.node_port is None:
            raise LBConfigError(
                f"{workload.kind} {workload.name} has no NodePort Service for a load balancer"
            )
        servers = {node: f"{ip}:{workload.node_port}" for node, ip in addresses.items()}
        # Its process goes on the undo stack, so that drains made later are undone before it stops.
        managed = ManagedNginx(workdir, servers, upstream=workload.name, undo=undo)
        managed.start()
        return Frontend(managed.lb, managed.url, managed)
    validate(settings)  # done at session start already; cheap, and makes this safe on its own
    assert settings.lb_url, "settings not validated"
    assert settings.lb_upstream, "settings not validated"
    lb: LoadBalancer
    if kind == "nginx":
        assert settings.lb_config is not None, "settings not validated"
        host = DockerExecHost(settings.lb_container) if settings.lb_container else LocalHost()
        lb = NginxLB(
            settings.lb_upstream,
            config=str(settings.lb_config),
            nodes=addresses,
            host=host,
            undo=undo,
        )
    else:
        assert settings.lb_socket is not None, "settings not validated"
        lb = HAProxyLB(
            settings.lb_upstream, runtime=str(settings.lb_socket), nodes=addresses, undo=undo
        )
    lb.validate()
    return Frontend(lb, settings.lb_url)
