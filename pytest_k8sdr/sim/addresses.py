"""Where a simulated node lives on loopback: its InternalIP and its podCIDR.

Node k (0-based, the control plane is 0) of the cluster in address slot S has InternalIP
127.{1 + S}.{k // 250}.{k % 250 + 1}. Its podCIDR (pod IPs .1 .. .254 within it) is
127.{16 + 4*S + k // 256}.{k % 256}.0/24 for the launcher's slots 1..14 (second octets
20..75, 1024 nodes a slot), and 127.{128 + k // 256}.{k % 256}.0/24 for slot 0, the agents
started by hand (tests, benchmarks: up to 32768 nodes, far from every launched cluster's).
The launcher gives every cluster its own slot, so simulated clusters running side by side
never share an address.
"""

from __future__ import annotations

__all__ = ["node_address", "node_pod_cidr"]


def node_address(index: int, slot: int = 0) -> str:
    """The InternalIP of node `index` of the cluster in address `slot`."""
    return f"127.{1 + slot}.{index // 250}.{index % 250 + 1}"


def node_pod_cidr(index: int, slot: int = 0) -> str:
    """The podCIDR of node `index` of the cluster in address `slot`."""
    second = 128 + index // 256 if slot == 0 else 16 + 4 * slot + index // 256
    return f"127.{second}.{index % 256}.0/24"
