"""External load balancers in front of the nodes: nginx and HAProxy drivers, a traffic probe.

A driver drains a node (stops sending it traffic) and restores it, registering the undo of every
drain on an `UndoStack` before the change; the checks read back what the load balancer itself
routes to and what a `TrafficProbe` saw going through it::

    lb = NginxLB("web", config="/etc/nginx/nginx.conf", nodes={"worker-2": "10.0.0.12"},
                 undo=undo_stack)
    with TrafficProbe("http://127.0.0.1:8080/", rate=50) as probe:
        lb.drain("worker-2")
        assert_lb_drained(lb, "worker-2", probe=probe)
        lb.restore("worker-2")
        assert_lb_restored(lb, "worker-2", probe=probe)
"""

from __future__ import annotations

from pytest_k8sdr.lb.base import LoadBalancer, Member, NodeAddresses
from pytest_k8sdr.lb.checks import assert_lb_drained, assert_lb_restored, assert_lb_serving
from pytest_k8sdr.lb.errors import (
    LBCommandFailed,
    LBConfigError,
    LBConfigInvalid,
    LBError,
    LBToolMissing,
    NodeNotInLB,
    UpstreamNotFound,
)
from pytest_k8sdr.lb.haproxy import HAProxyLB, HostRuntimeAPI, RuntimeAPI, SocketRuntimeAPI
from pytest_k8sdr.lb.hosts import (
    CommandResult,
    ConfigHost,
    DockerExecHost,
    LocalHost,
    SSHExecutor,
    SSHHost,
)
from pytest_k8sdr.lb.nginx import NginxLB
from pytest_k8sdr.lb.probe import ErrorWindow, ProbeRecord, ProbeSummary, TrafficProbe, summarize

__all__ = [
    "CommandResult",
    "ConfigHost",
    "DockerExecHost",
    "ErrorWindow",
    "HAProxyLB",
    "HostRuntimeAPI",
    "LBCommandFailed",
    "LBConfigError",
    "LBConfigInvalid",
    "LBError",
    "LBToolMissing",
    "LoadBalancer",
    "LocalHost",
    "Member",
    "NginxLB",
    "NodeAddresses",
    "NodeNotInLB",
    "ProbeRecord",
    "ProbeSummary",
    "RuntimeAPI",
    "SSHExecutor",
    "SSHHost",
    "SocketRuntimeAPI",
    "TrafficProbe",
    "UpstreamNotFound",
    "assert_lb_drained",
    "assert_lb_restored",
    "assert_lb_serving",
    "summarize",
]
