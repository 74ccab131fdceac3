"""The scheduling framework: extension points, statuses, node and pod info, the profile's run.

The shape of kube-scheduler's framework (pkg/scheduler/framework/interface.go for the extension
points and Status codes, pkg/scheduler/framework/types.go for NodeInfo, PodInfo and FitError,
pkg/scheduler/framework/runtime/framework.go for how a profile runs its plugins,
pkg/scheduler/framework/cycle_state.go for CycleState). A scheduling cycle runs, for one pod:
PreFilter (every plugin; one may reject the pod outright, or narrow the nodes), Filter (per node,
plugins in profile order, the first rejection is that node's status), PostFilter (only when no
node fits: preemption), PreScore and Score (weighted sum of normalized 0-100 scores over the
feasible nodes), Reserve, PreBind, then the bind.

Adding a plugin (17b's VolumeBinding is one):
1. Write `plugins/<upstreamname>.py` with one class whose `name` is upstream's plugin name. It
   subclasses the extension-point bases it implements (`PreFilterPlugin`, `FilterPlugin`,
   `PostFilterPlugin`, `PreScorePlugin`, `ScorePlugin`, `ReservePlugin`, `PreBindPlugin`), as an
   upstream plugin implements those interfaces. Its constructor takes the `Handle` (store,
   informers, snapshot, event recorder, the framework itself). Per-cycle data goes into the
   `CycleState` under the plugin's name; give it a `clone()` if PreFilter extensions
   (`add_pod`/`remove_pod`, used by preemption) change it.
2. Set `events`: the cluster events (`EVENT_*` names below, or a new one the scheduler
   queue is told about through `Scheduler.move_all`) after which a pod this plugin rejected
   may fit, so the queue retries it (upstream's EventsToRegister).
3. Add it to `plugins.REGISTRY` and to `plugins.DEFAULT_PROFILE` at upstream's position
   (pkg/scheduler/apis/config/v1/default_plugins.go): filter order decides which reason a node
   reports. A Filter returns None for success or a `Status`; reasons are upstream's strings.

Python liberties: success is `None` rather than a Status object (the filter loop is the hot
path), and the cycle is synchronous (binding happens in the cycle, so no assume/forget cache).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from pytest_k8sdr.sim.apimachinery.meta import Key, is_terminating, key_of, meta
from pytest_k8sdr.sim.apimachinery.quantity import parse_quantity
from pytest_k8sdr.sim.apimachinery.selectors import selector_matches
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.controllers.podutil import pod_requests

__all__ = [
    "EVENT_ASSIGNED_POD_ADD",
    "EVENT_ASSIGNED_POD_DELETE",
    "EVENT_ASSIGNED_POD_UPDATE",
    "EVENT_NODE_ADD",
    "EVENT_NODE_DELETE",
    "EVENT_NODE_UPDATE",
    "EVENT_PDB_CHANGE",
    "MAX_NODE_SCORE",
    "AffinityTerm",
    "Code",
    "CycleState",
    "Diagnosis",
    "FilterPlugin",
    "Framework",
    "Handle",
    "NodeInfo",
    "Plugin",
    "PodInfo",
    "PostFilterPlugin",
    "PostFilterResult",
    "PreBindPlugin",
    "PreFilterPlugin",
    "PreScorePlugin",
    "ReservePlugin",
    "ScorePlugin",
    "Snapshot",
    "Status",
    "WeightedAffinityTerm",
    "fit_error_message",
]

MAX_NODE_SCORE = 100  # framework.MaxNodeScore
# pkg/scheduler/util/pod_resources.go: what a container without requests counts as for scoring.
DEFAULT_MILLI_CPU_REQUEST = 0.1
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024

# Cluster events a plugin may register (pkg/scheduler/framework/types.go ClusterEvent).
EVENT_NODE_ADD = "Node/Add"
EVENT_NODE_UPDATE = "Node/Update"  # labels, taints, allocatable or spec.unschedulable changed
EVENT_NODE_DELETE = "Node/Delete"
EVENT_ASSIGNED_POD_ADD = "AssignedPod/Add"
EVENT_ASSIGNED_POD_UPDATE = "AssignedPod/Update"  # labels changed
EVENT_ASSIGNED_POD_DELETE = "AssignedPod/Delete"  # deleted, terminating or terminal
EVENT_PDB_CHANGE = "PodDisruptionBudget/All"


class Code(enum.IntEnum):
    """framework.Code (interface.go)."""

    SUCCESS = 0
    ERROR = 1
    UNSCHEDULABLE = 2
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3
    WAIT = 4
    SKIP = 5
    PENDING = 6


@dataclass(frozen=True)
class Status:
    """A plugin's verdict: a code, upstream's reason strings, and which plugin said it."""

    code: Code
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @classmethod
    def unschedulable(cls, *reasons: str) -> Status:
        """Code Unschedulable: preemption may help."""
        return cls(Code.UNSCHEDULABLE, reasons)

    @classmethod
    def unresolvable(cls, *reasons: str) -> Status:
        """Code UnschedulableAndUnresolvable: preemption on this node cannot help."""
        return cls(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, reasons)

    @property
    def message(self) -> str:
        """The reasons joined as upstream's Status.Message does."""
        return ", ".join(self.reasons)

    def is_rejected(self) -> bool:
        """Unschedulable, UnschedulableAndUnresolvable or Pending."""
        return self.code in (
            Code.UNSCHEDULABLE,
            Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
            Code.PENDING,
        )

    def with_plugin(self, plugin: str) -> Status:
        """The same status, attributed to `plugin`."""
        return Status(self.code, self.reasons, plugin)


SKIP = Status(Code.SKIP)


@dataclass(frozen=True)
class AffinityTerm:
    """A PodAffinityTerm made ready to match (framework.AffinityTerm, types.go)."""

    selector: JSON | None
    namespaces: frozenset[str]
    namespace_selector: JSON | None
    topology_key: str

    @classmethod
    def parse(cls, term: JSON, own_namespace: str) -> AffinityTerm:
        """An empty namespaces list with no namespaceSelector means the pod's own namespace."""
        namespaces = frozenset(term.get("namespaces") or ())
        ns_selector = term.get("namespaceSelector")
        if not namespaces and ns_selector is None:
            namespaces = frozenset({own_namespace})
        return cls(
            selector=term.get("labelSelector"),
            namespaces=namespaces,
            namespace_selector=ns_selector,
            topology_key=str(term.get("topologyKey") or ""),
        )

    def matches(self, pod: PodInfo, ns_labels: Callable[[str], Mapping[str, str]]) -> bool:
        """The pod is in the term's namespaces and its labels match the selector.

        A nil labelSelector matches no pod (types.go: "nil selector matches nothing").
        """
        if self.selector is None:
            return False
        if pod.namespace not in self.namespaces and not (
            self.namespace_selector is not None
            and selector_matches(self.namespace_selector, ns_labels(pod.namespace))
        ):
            return False
        return selector_matches(self.selector, pod.labels)


@dataclass(frozen=True)
class WeightedAffinityTerm:
    """A WeightedPodAffinityTerm."""

    term: AffinityTerm
    weight: int


def _terms(pod: JSON, kind: str, required: bool) -> tuple[Any, ...]:
    aff = ((pod.get("spec") or {}).get("affinity") or {}).get(kind) or {}
    ns = meta(pod).get("namespace") or ""
    if required:
        return tuple(
            AffinityTerm.parse(t, ns)
            for t in aff.get("requiredDuringSchedulingIgnoredDuringExecution") or ()
        )
    return tuple(
        WeightedAffinityTerm(
            AffinityTerm.parse(w.get("podAffinityTerm") or {}, ns), int(w["weight"])
        )
        for w in aff.get("preferredDuringSchedulingIgnoredDuringExecution") or ()
        if w.get("weight")
    )


class PodInfo:
    """A pod with what plugins need pre-computed once (framework.PodInfo, types.go)."""

    __slots__ = (
        "key",
        "labels",
        "name",
        "namespace",
        "node_name",
        "non_zero",
        "pod",
        "preferred_affinity",
        "preferred_anti_affinity",
        "priority",
        "requests",
        "required_affinity",
        "required_anti_affinity",
        "start_time",
        "terminating",
        "tolerations",
    )

    def __init__(self, pod: JSON) -> None:
        m = meta(pod)
        spec = pod.get("spec") or {}
        self.pod = pod
        self.key: Key = key_of(pod)
        self.namespace: str = m.get("namespace") or ""
        self.name: str = m.get("name") or ""
        self.labels: Mapping[str, str] = m.get("labels") or {}
        self.node_name: str = spec.get("nodeName") or ""
        self.priority: int = int(spec.get("priority") or 0)
        self.terminating = is_terminating(pod)
        self.tolerations: list[JSON] = list(spec.get("tolerations") or ())
        self.start_time: str = str(
            (pod.get("status") or {}).get("startTime") or m.get("creationTimestamp") or ""
        )
        self.requests: dict[str, float] = pod_requests(pod)
        # NonZeroRequested (pkg/scheduler/util/pod_resources.go): scoring only.
        self.non_zero = (
            self.requests.get("cpu") or DEFAULT_MILLI_CPU_REQUEST,
            self.requests.get("memory") or DEFAULT_MEMORY_REQUEST,
        )
        self.required_affinity: tuple[AffinityTerm, ...] = _terms(pod, "podAffinity", True)
        self.required_anti_affinity: tuple[AffinityTerm, ...] = _terms(pod, "podAntiAffinity", True)
        self.preferred_affinity: tuple[WeightedAffinityTerm, ...] = _terms(
            pod, "podAffinity", False
        )
        self.preferred_anti_affinity: tuple[WeightedAffinityTerm, ...] = _terms(
            pod, "podAntiAffinity", False
        )

    @property
    def has_affinity(self) -> bool:
        """Any pod affinity or anti-affinity (types.go podWithAffinity)."""
        return bool(
            self.required_affinity
            or self.required_anti_affinity
            or self.preferred_affinity
            or self.preferred_anti_affinity
        )


def _allocatable(node: JSON) -> dict[str, float]:
    raw = (node.get("status") or {}).get("allocatable") or {}
    return {k: parse_quantity(v) for k, v in raw.items()}


class NodeInfo:
    """A node with the pods bound to it and what they request (framework.NodeInfo, types.go)."""

    __slots__ = (
        "allocatable",
        "labels",
        "name",
        "node",
        "non_zero_requested",
        "pods",
        "pods_with_affinity",
        "pods_with_required_anti_affinity",
        "requested",
        "taints",
    )

    def __init__(self, node: JSON) -> None:
        self.pods: dict[Key, PodInfo] = {}
        self.pods_with_affinity: dict[Key, PodInfo] = {}
        self.pods_with_required_anti_affinity: dict[Key, PodInfo] = {}
        self.requested: dict[str, float] = {"pods": 0.0}
        self.non_zero_requested = [0.0, 0.0]
        self.set_node(node)

    def set_node(self, node: JSON) -> None:
        """Take a new version of the Node object."""
        self.node = node
        self.name: str = meta(node).get("name") or ""
        self.labels: Mapping[str, str] = meta(node).get("labels") or {}
        self.taints: list[JSON] = list((node.get("spec") or {}).get("taints") or [])
        self.allocatable = _allocatable(node)

    def add_pod(self, pod: PodInfo) -> None:
        """Count a pod bound to this node."""
        self.pods[pod.key] = pod
        if pod.has_affinity:
            self.pods_with_affinity[pod.key] = pod
        if pod.required_anti_affinity:
            self.pods_with_required_anti_affinity[pod.key] = pod
        req = self.requested
        for resource, amount in pod.requests.items():
            req[resource] = req.get(resource, 0.0) + amount
        req["pods"] += 1
        self.non_zero_requested[0] += pod.non_zero[0]
        self.non_zero_requested[1] += pod.non_zero[1]

    def remove_pod(self, key: Key) -> PodInfo | None:
        """Stop counting a pod; returns it (None if it was not here)."""
        pod = self.pods.pop(key, None)
        if pod is None:
            return None
        self.pods_with_affinity.pop(key, None)
        self.pods_with_required_anti_affinity.pop(key, None)
        req = self.requested
        for resource, amount in pod.requests.items():
            req[resource] = req.get(resource, 0.0) - amount
        req["pods"] -= 1
        self.non_zero_requested[0] -= pod.non_zero[0]
        self.non_zero_requested[1] -= pod.non_zero[1]
        return pod

    def clone(self) -> NodeInfo:
        """A copy whose pods can be added and removed (preemption's dry run)."""
        other = NodeInfo.__new__(NodeInfo)
        other.node = self.node
        other.name = self.name
        other.labels = self.labels
        other.taints = self.taints
        other.allocatable = self.allocatable
        other.pods = dict(self.pods)
        other.pods_with_affinity = dict(self.pods_with_affinity)
        other.pods_with_required_anti_affinity = dict(self.pods_with_required_anti_affinity)
        other.requested = dict(self.requested)
        other.non_zero_requested = list(self.non_zero_requested)
        return other


class Snapshot:
    """Every node's NodeInfo, in a stable order (internal/cache/snapshot.go)."""

    def __init__(self) -> None:
        self.by_name: dict[str, NodeInfo] = {}
        # Pods bound to a node the scheduler does not know (yet): counted when it appears.
        self.orphans: dict[str, dict[Key, PodInfo]] = {}

    def node_infos(self) -> list[NodeInfo]:
        """All nodes, in the order they were added."""
        return list(self.by_name.values())

    def get(self, name: str) -> NodeInfo | None:
        """One node's info."""
        return self.by_name.get(name)

    def have_pods_with_affinity(self) -> list[NodeInfo]:
        """Nodes with at least one pod with (anti-)affinity."""
        return [n for n in self.by_name.values() if n.pods_with_affinity]

    def have_pods_with_required_anti_affinity(self) -> list[NodeInfo]:
        """Nodes with at least one pod with required anti-affinity."""
        return [n for n in self.by_name.values() if n.pods_with_required_anti_affinity]


class CycleState:
    """Per-cycle data of the plugins, keyed by plugin name (cycle_state.go)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.skip_filter: set[str] = set()
        self.skip_score: set[str] = set()

    def clone(self) -> CycleState:
        """A copy whose plugin states can be changed without touching this one."""
        other = CycleState()
        other.data = {k: (v.clone() if hasattr(v, "clone") else v) for k, v in self.data.items()}
        other.skip_filter = set(self.skip_filter)
        other.skip_score = set(self.skip_score)
        return other


@dataclass
class Diagnosis:
    """Why a pod fits nowhere (types.go Diagnosis)."""

    node_to_status: dict[str, Status] = field(default_factory=dict)
    absent_status: Status | None = None
    unschedulable_plugins: set[str] = field(default_factory=set)
    pre_filter_msg: str = ""
    post_filter_msg: str = ""


def fit_error_message(num_all_nodes: int, diagnosis: Diagnosis) -> str:
    """FitError.Error() (types.go): `0/N nodes are available: <reasons>. <post filter msg>`.

    Reasons are counted over nodes and sorted as strings; nodes absent from the status map get
    the absent status. The PostFilter message follows after a space without another period
    (upstream dropped the doubled period of older releases).
    """
    msg = f"0/{num_all_nodes} nodes are available:"
    if diagnosis.pre_filter_msg:
        msg += f" {diagnosis.pre_filter_msg}."
    else:
        reasons: dict[str, int] = {}
        for status in diagnosis.node_to_status.values():
            for reason in status.reasons:
                reasons[reason] = reasons.get(reason, 0) + 1
        absent = num_all_nodes - len(diagnosis.node_to_status)
        if absent > 0 and diagnosis.absent_status is not None:
            for reason in diagnosis.absent_status.reasons:
                reasons[reason] = reasons.get(reason, 0) + absent
        parts = sorted(f"{count} {reason}" for reason, count in reasons.items())
        if parts:
            msg += f" {', '.join(parts)}."
    if diagnosis.post_filter_msg:
        msg += f" {diagnosis.post_filter_msg}"
    return msg


@dataclass(frozen=True)
class PostFilterResult:
    """PostFilter's outcome: the node the pod is nominated to (preemption)."""

    nominated_node_name: str


class Handle(Protocol):
    """What plugins reach (framework.Handle): the world as the scheduler sees it."""

    store: Any
    informers: Any
    recorder: Any
    snapshot: Snapshot
    framework: Framework

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        """The labels of a namespace ({} when unknown)."""
        ...

    def nominated_pods_for_node(self, node_name: str) -> list[PodInfo]:
        """Pending pods nominated to that node by preemption."""
        ...

    def clear_nomination(self, pod: PodInfo) -> None:
        """Drop a pod's status.nominatedNodeName (it lost its place to a higher priority)."""
        ...


class Plugin:
    """A scheduler plugin: upstream's name and the cluster events that may make room."""

    name: ClassVar[str]
    events: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, handle: Handle) -> None:
        self.handle = handle


class PreFilterPlugin(Plugin):
    """PreFilter: pod-level checks and pre-computation; may narrow the candidate nodes."""

    def pre_filter(
        self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]
    ) -> tuple[set[str] | None, Status | None]:
        """(node names the pod may go to or None for all, a rejection/Skip or None)."""
        raise NotImplementedError

    def add_pod(self, state: CycleState, pod: PodInfo, added: PodInfo, node: NodeInfo) -> None:
        """PreFilterExtensions.AddPod: `added` is now counted on `node` (preemption)."""

    def remove_pod(self, state: CycleState, pod: PodInfo, removed: PodInfo, node: NodeInfo) -> None:
        """PreFilterExtensions.RemovePod: `removed` is no longer on `node` (preemption)."""


class FilterPlugin(Plugin):
    """Filter: may the pod run on this node."""

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        """None when it may, else a rejecting Status with upstream's reason."""
        raise NotImplementedError


class PostFilterPlugin(Plugin):
    """PostFilter: runs when no node fits (preemption)."""

    def post_filter(
        self, state: CycleState, pod: PodInfo, statuses: dict[str, Status]
    ) -> tuple[PostFilterResult | None, Status]:
        """A nominated node on success; the message goes into the FitError."""
        raise NotImplementedError


class PreScorePlugin(Plugin):
    """PreScore: pre-computation over the feasible nodes; Skip means no Score call."""

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        """None, or SKIP when this plugin has nothing to score."""
        raise NotImplementedError


class ScorePlugin(Plugin):
    """Score: a number per feasible node, normalized to 0..MAX_NODE_SCORE."""

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> float:
        """The raw score."""
        raise NotImplementedError

    def normalize(self, state: CycleState, pod: PodInfo, scores: dict[str, float]) -> None:
        """ScoreExtensions.NormalizeScore, in place (default: scores are already 0..100)."""


class ReservePlugin(Plugin):
    """Reserve/Unreserve: claim per-node resources before binding (volumes)."""

    def reserve(self, state: CycleState, pod: PodInfo, node_name: str) -> Status | None:
        """None, or a rejection that sends the pod back to the queue."""
        raise NotImplementedError

    def unreserve(self, state: CycleState, pod: PodInfo, node_name: str) -> None:
        """Undo reserve after a later failure."""


class PreBindPlugin(Plugin):
    """PreBind: API writes that must happen before the Binding (volume binding)."""

    def pre_bind(self, state: CycleState, pod: PodInfo, node_name: str) -> Status | None:
        """None, or a rejection that sends the pod back to the queue."""
        raise NotImplementedError


def normalize_reverse(scores: dict[str, float], reverse: bool) -> None:
    """helper.DefaultNormalizeScore: scale to 0..100 by the maximum, optionally reversed."""
    top = max(scores.values(), default=0.0)
    if top == 0:
        if reverse:
            for k in scores:
                scores[k] = MAX_NODE_SCORE
        return
    for k, v in scores.items():
        s = MAX_NODE_SCORE * v / top
        scores[k] = MAX_NODE_SCORE - s if reverse else s


class Framework:
    """One scheduling profile: its plugins per extension point, run as runtime/framework.go."""

    def __init__(self, plugins: Iterable[tuple[Plugin, int]]) -> None:
        self.plugins: list[Plugin] = []
        self.weights: dict[str, int] = {}
        for plugin, weight in plugins:
            self.plugins.append(plugin)
            self.weights[plugin.name] = weight
        self.pre_filter = [p for p in self.plugins if isinstance(p, PreFilterPlugin)]
        self.filters = [p for p in self.plugins if isinstance(p, FilterPlugin)]
        self.post_filters = [p for p in self.plugins if isinstance(p, PostFilterPlugin)]
        self.pre_score = [p for p in self.plugins if isinstance(p, PreScorePlugin)]
        self.scores = [p for p in self.plugins if isinstance(p, ScorePlugin)]
        self.reserves = [p for p in self.plugins if isinstance(p, ReservePlugin)]
        self.pre_binds = [p for p in self.plugins if isinstance(p, PreBindPlugin)]

    def plugins_for_event(self, event: str) -> set[str]:
        """Names of the plugins that registered `event`."""
        return {p.name for p in self.plugins if event in p.events}

    def run_pre_filter(
        self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]
    ) -> tuple[set[str] | None, Status | None]:
        """Every PreFilter; the allowed node names intersect; the first rejection ends it."""
        allowed: set[str] | None = None
        narrowed_by: list[str] = []
        for plugin in self.pre_filter:
            names, status = plugin.pre_filter(state, pod, nodes)
            if status is not None:
                if status.code == Code.SKIP:
                    state.skip_filter.add(plugin.name)
                    continue
                return None, status.with_plugin(plugin.name)
            if names is not None:
                allowed = set(names) if allowed is None else allowed & names
                narrowed_by.append(plugin.name)
                if not allowed:
                    return None, Status.unresolvable(
                        f"node(s) didn't satisfy plugin(s) [{', '.join(narrowed_by)}]"
                    ).with_plugin(plugin.name)
        return allowed, None

    def run_filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        """Filters in profile order; the first rejection is the node's status."""
        skip = state.skip_filter
        for plugin in self.filters:
            if plugin.name in skip:
                continue
            status = plugin.filter(state, pod, node)
            if status is not None:
                return status.with_plugin(plugin.name)
        return None

    def run_filter_with_nominated(
        self, state: CycleState, pod: PodInfo, node: NodeInfo, nominated: list[PodInfo]
    ) -> Status | None:
        """RunFilterPluginsWithNominatedPods: filters pass with and without the nominated pods.

        Pods nominated to the node with at least this pod's priority count as if bound there,
        so a lower-priority pod does not take the room preemption made for them.
        """
        others = [p for p in nominated if p.priority >= pod.priority and p.key != pod.key]
        if others:
            state2 = state.clone()
            node2 = node.clone()
            for other in others:
                node2.add_pod(other)
                for plugin in self.pre_filter:
                    plugin.add_pod(state2, pod, other, node2)
            status = self.run_filter(state2, pod, node2)
            if status is not None:
                return status
        return self.run_filter(state, pod, node)

    def run_add_pod(self, state: CycleState, pod: PodInfo, added: PodInfo, node: NodeInfo) -> None:
        """Every PreFilter extension's AddPod."""
        for plugin in self.pre_filter:
            if plugin.name not in state.skip_filter:
                plugin.add_pod(state, pod, added, node)

    def run_remove_pod(
        self, state: CycleState, pod: PodInfo, removed: PodInfo, node: NodeInfo
    ) -> None:
        """Every PreFilter extension's RemovePod."""
        for plugin in self.pre_filter:
            if plugin.name not in state.skip_filter:
                plugin.remove_pod(state, pod, removed, node)

    def run_post_filter(
        self, state: CycleState, pod: PodInfo, statuses: dict[str, Status]
    ) -> tuple[PostFilterResult | None, Status | None]:
        """PostFilter plugins until one succeeds; the last message otherwise."""
        last: Status | None = None
        for plugin in self.post_filters:
            result, status = plugin.post_filter(state, pod, statuses)
            if status.code == Code.SUCCESS:
                return result, status
            last = status
        return None, last

    def run_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[float]:
        """PreScore, Score, NormalizeScore and weights: the total per node, in `nodes` order."""
        totals = [0.0] * len(nodes)
        for pre in self.pre_score:
            status = pre.pre_score(state, pod, nodes)
            if status is not None and status.code == Code.SKIP:
                state.skip_score.add(pre.name)
        for scorer in self.scores:
            if scorer.name in state.skip_score:
                continue
            scores = {n.name: scorer.score(state, pod, n) for n in nodes}
            scorer.normalize(state, pod, scores)
            weight = self.weights.get(scorer.name, 1)
            for i, n in enumerate(nodes):
                value = scores[n.name]
                if math.isfinite(value):
                    totals[i] += value * weight
        return totals

    def run_reserve(self, state: CycleState, pod: PodInfo, node_name: str) -> Status | None:
        """Reserve in order; on a rejection, Unreserve every reserve plugin (reverse order)."""
        for plugin in self.reserves:
            status = plugin.reserve(state, pod, node_name)
            if status is not None:
                self.run_unreserve(state, pod, node_name)
                return status.with_plugin(plugin.name)
        return None

    def run_unreserve(self, state: CycleState, pod: PodInfo, node_name: str) -> None:
        """Unreserve, last plugin first."""
        for plugin in reversed(self.reserves):
            plugin.unreserve(state, pod, node_name)

    def run_pre_bind(self, state: CycleState, pod: PodInfo, node_name: str) -> Status | None:
        """PreBind in order; the first rejection ends it."""
        for plugin in self.pre_binds:
            status = plugin.pre_bind(state, pod, node_name)
            if status is not None:
                return status.with_plugin(plugin.name)
        return None
