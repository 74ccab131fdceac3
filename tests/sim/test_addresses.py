"""Simulated clusters side by side never share a loopback address."""

from __future__ import annotations

import ipaddress

from pytest_k8sdr.sim.addresses import node_address, node_pod_cidr
from pytest_k8sdr.sim.processes import SLOTS


def test_launched_slots_and_hand_started_agents_take_disjoint_pod_networks() -> None:
    # Launched clusters: up to 1024 nodes each. Slot 0 (agents the tests start by hand, from
    # index 2000 on under pytest-xdist): tens of thousands. A pod network given twice would
    # make two pods bind one IP:port, and one of them never turns Ready.
    owners: dict[ipaddress.IPv4Network, tuple[int, int]] = {}
    blocks = [(slot, range(1024)) for slot in SLOTS] + [(0, range(0, 32768, 7))]
    for slot, indexes in blocks:
        for index in indexes:
            net = ipaddress.IPv4Network(node_pod_cidr(index, slot))
            assert net.subnet_of(ipaddress.IPv4Network("127.0.0.0/8"))
            assert owners.setdefault(net, (slot, index)) == (slot, index), net
    addresses = [node_address(i, s) for s, indexes in blocks for i in indexes]
    assert len(set(addresses)) == len(addresses)
    # No node address lies inside any pod network.
    nets = {ipaddress.IPv4Network(f"{n.network_address}/16", strict=False) for n in owners}
    assert not {ipaddress.IPv4Network(f"{a}/16", strict=False) for a in addresses} & nets
