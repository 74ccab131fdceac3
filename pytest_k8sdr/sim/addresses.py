"""Where a simulated node lives on loopback: its InternalIP and its podCIDR.

Node k (0-based, the control plane is 0) of the cluster in address slot S has InternalIP
127.{1 + S}.{k // 250}.{k % 250 + 1} and podCIDR 127.{16 + 4*S + k // 256}.{k % 256}.0/24 (pod
IPs .1 .. .254 within it). The launcher gives every cluster its own slot 1..14, so simulated
clusters running side by side never share an address; slot 0 is for agents started by hand.
"""

from __future__ import annotations

__all__ = ["node_address", "node_pod_cidr"]


def node_address(index: int, slot: int = 0) -> str:
    """The InternalIP of node `index` of the cluster in address `slot`."""
    return f"127.{1 + slot}.{index // 250}.{index % 250 + 1}"


def node_pod_cidr(index: int, slot: int = 0) -> str:
    """The podCIDR of node `index` of the cluster in address `slot`."""
    return f"127.{16 + 4 * slot + index // 256}.{index % 256}.0/24"
