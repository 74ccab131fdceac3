"""Who a simulated node is, and the versions its kubelet reports."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KUBELET_VERSION", "RUNTIME_VERSION", "NodeSpec"]

KUBELET_VERSION = "v1.33.0-k8sdr-sim"
RUNTIME_VERSION = "k8sdr-sim://1"


@dataclass(frozen=True)
class NodeSpec:
    """Who a simulated node is: its name, addresses and the kubelet's registration flags."""

    name: str
    address: str
    pod_cidr: str
    labels: tuple[tuple[str, str], ...] = ()
    taints: tuple[tuple[str, str, str], ...] = ()  # key, value, effect
    zone: str | None = None
    cpu: str = "2"
    memory: str = "8Gi"
    max_pods: int = 110
