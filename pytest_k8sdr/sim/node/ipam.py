"""Pod IPs from the node's podCIDR (the host-local IPAM plugin's round robin)."""

from __future__ import annotations

import ipaddress

__all__ = ["Ipam"]


class Ipam:
    """Pod IPs from the podCIDR, round robin as host-local IPAM (no immediate reuse)."""

    def __init__(self, cidr: str) -> None:
        network = ipaddress.ip_network(cidr)
        self._net = network
        # Hosts computed on demand: a hollow agent holds a thousand of these.
        self._first = int(network.network_address) + 1
        self._size = max(1, network.num_addresses - 2)
        self._owner: dict[str, str] = {}  # ip -> uid
        self._next = 0

    def contains(self, ip: str) -> bool:
        """Whether ip lies in the podCIDR."""
        try:
            return ipaddress.ip_address(ip) in self._net
        except ValueError:
            return False

    def reserve(self, uid: str, ip: str) -> bool:
        """Give `ip` to `uid` if it is ours and free."""
        if not self.contains(ip) or self._owner.get(ip, uid) != uid:
            return False
        self._owner[ip] = uid
        return True

    def allocate(self, uid: str) -> str:
        """The uid's IP, allocating the next free one; RuntimeError when the range is full."""
        for ip, owner in self._owner.items():
            if owner == uid:
                return ip
        for step in range(self._size):
            offset = (self._next + step) % self._size
            ip = str(ipaddress.IPv4Address(self._first + offset))
            if ip not in self._owner:
                self._next = (offset + 1) % self._size
                self._owner[ip] = uid
                return ip
        raise RuntimeError(f"pod CIDR {self._net} is full")

    def release(self, uid: str) -> None:
        """Free the uid's IP."""
        for ip in [ip for ip, owner in self._owner.items() if owner == uid]:
            del self._owner[ip]
