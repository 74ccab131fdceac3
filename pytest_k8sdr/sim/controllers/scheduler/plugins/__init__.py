"""The scheduler's plugins and the default profile.

pkg/scheduler/framework/plugins/registry.go, pkg/scheduler/apis/config/v1/default_plugins.go.

`DEFAULT_PROFILE` lists the plugins in upstream's order with their score weights; filter order
is this order, so a node reports the reason of the first plugin that rejects it. Upstream
plugins not here: SchedulingGates, PrioritySort (the queue sorts by priority itself), NodePorts,
VolumeRestrictions, NodeVolumeLimits, VolumeZone, ImageLocality, DynamicResources.
"""

from __future__ import annotations

from pytest_k8sdr.sim.controllers.scheduler.framework import Plugin
from pytest_k8sdr.sim.controllers.scheduler.plugins.defaultpreemption import DefaultPreemption
from pytest_k8sdr.sim.controllers.scheduler.plugins.interpodaffinity import InterPodAffinity
from pytest_k8sdr.sim.controllers.scheduler.plugins.nodeaffinity import NodeAffinity
from pytest_k8sdr.sim.controllers.scheduler.plugins.nodename import NodeName
from pytest_k8sdr.sim.controllers.scheduler.plugins.noderesources import (
    NodeResourcesBalancedAllocation,
    NodeResourcesFit,
)
from pytest_k8sdr.sim.controllers.scheduler.plugins.nodeunschedulable import NodeUnschedulable
from pytest_k8sdr.sim.controllers.scheduler.plugins.podtopologyspread import PodTopologySpread
from pytest_k8sdr.sim.controllers.scheduler.plugins.tainttoleration import TaintToleration
from pytest_k8sdr.sim.controllers.scheduler.plugins.volumebinding import VolumeBinding

__all__ = ["DEFAULT_PROFILE", "REGISTRY"]

REGISTRY: dict[str, type[Plugin]] = {
    p.name: p
    for p in (
        NodeUnschedulable,
        NodeName,
        TaintToleration,
        NodeAffinity,
        NodeResourcesFit,
        VolumeBinding,
        PodTopologySpread,
        InterPodAffinity,
        DefaultPreemption,
        NodeResourcesBalancedAllocation,
    )
}

# (plugin name, score weight): upstream's multiPoint list of the default profile.
DEFAULT_PROFILE: tuple[tuple[str, int], ...] = (
    ("NodeUnschedulable", 0),
    ("NodeName", 0),
    ("TaintToleration", 3),
    ("NodeAffinity", 2),
    ("NodeResourcesFit", 1),
    ("VolumeBinding", 0),
    ("PodTopologySpread", 2),
    ("InterPodAffinity", 2),
    ("DefaultPreemption", 0),
    ("NodeResourcesBalancedAllocation", 1),
)
