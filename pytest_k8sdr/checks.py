"""Checks that the cluster healed itself; each takes the object it is about.

A workload check takes the `Workload` (it knows its namespace, selector and Service), a node
check the cluster and the node's name, a load-balancer check the load balancer. Every check
returns a `Result` (value, when the deciding event happened, what was observed) and reports it
to the runbook phase it runs in; every check's `timeout` defaults to the phase's remaining SLO
(`DEFAULT_TIMEOUT` outside a phase). A failed check raises `ClusterCheckFailed` (an
AssertionError) saying what is left: which pods, on which node, in which state.

The history checks (`assert_no_split_brain`, `assert_min_available`) read what a
`pod_history(workload)` block recorded from a watch.
"""

from __future__ import annotations

import contextvars
import http.client
import itertools
import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType

from pytest_k8sdr.cluster import JSON, Cluster, NodeView, PodView, Snapshot, Taint
from pytest_k8sdr.errors import ClusterCheckFailed, ConfigError, ToolError, WaitTimeout
from pytest_k8sdr.faults.node import NodeSnapshot
from pytest_k8sdr.results import (
    PhaseSpan,
    Result,
    Satisfied,
    current_phase,
    deadline_for,
    report,
)
from pytest_k8sdr.workloads import Workload

TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_NOT_READY = "node.kubernetes.io/not-ready"

# How long a pod's own address gets to answer the split-brain probe.
POD_PROBE_TIMEOUT = 1.0


def _pod_lines(pods: Iterable[PodView]) -> str:
    lines = [f"  {p.describe()}" for p in sorted(pods, key=lambda p: p.key)]
    return "\n".join(lines) or "  (no pods)"


def _live(pod: PodView) -> bool:
    return pod.ready and not pod.deleting and pod.phase == "Running"


def _state(pod: PodView) -> str:
    state = pod.phase + (", Ready" if pod.ready else ", not Ready")
    return state + (", Terminating" if pod.deleting else "")


# --------------------------------------------------------------------------- workloads


def assert_pods_rescheduled(
    workload: Workload,
    *,
    away_from: str | Iterable[str],
    timeout: float | None = None,
    replaced_uids: Iterable[str] | None = None,
) -> Result[list[PodView]]:
    """All replicas Ready, none on `away_from`, the pods that were there replaced (new UIDs).

    `away_from` is a node, or several (a zone, most of a cluster). `replaced_uids` are the UIDs
    that must not be among the Ready replicas; by default, those of the workload's pods on
    `away_from` when the check starts.
    """
    __tracebackhide__ = True
    avoid = {away_from} if isinstance(away_from, str) else set(away_from)
    where = ", ".join(sorted(avoid)) or "no node"
    if replaced_uids is None:
        replaced_uids = [p.uid for p in workload.pods() if p.node in avoid]
    old = set(replaced_uids)

    def fresh(p: PodView) -> bool:
        return _live(p) and p.node not in avoid and p.uid not in old

    def healed(s: Snapshot[PodView]) -> Satisfied[list[PodView]] | None:
        live = [p for p in s.values() if _live(p)]
        if len(live) < workload.replicas or not all(fresh(p) for p in live):
            return None
        nodes = ", ".join(sorted({p.node or "?" for p in live})) or "no node"
        return Satisfied(live, f"{len(live)} Ready replicas of {workload} on {nodes}")

    def explain(s: Snapshot[PodView]) -> str:
        return (
            f"want {workload.replicas} Ready replicas of {workload}, none on {where} and "
            f"none of the {len(old)} old pod(s); pods now:\n{_pod_lines(s.values())}"
        )

    result = workload.cluster.wait(
        "pods",
        healed,
        timeout=timeout,
        description=f"{workload} to be rescheduled away from {where}",
        namespace=workload.namespace,
        label_selector=workload.selector,
        explain=explain,
        count=lambda s: (sum(1 for p in s.values() if fresh(p)), workload.replicas),
        project=PodView.slim,
    )
    return report(result, "replicas Ready elsewhere")


def _unschedulable(pod: JSON) -> str | None:
    """The scheduler's message on a pod it could not place, or None."""
    if (pod.get("spec") or {}).get("nodeName") or (pod.get("metadata") or {}).get(
        "deletionTimestamp"
    ):
        return None
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if (cond.get("type"), cond.get("status"), cond.get("reason")) == (
            "PodScheduled",
            "False",
            "Unschedulable",
        ):
            return str(cond.get("message") or "")
    return None


def assert_pods_unschedulable(
    workload: Workload,
    *,
    count: int = 1,
    message: str = "",
    timeout: float | None = None,
) -> Result[list[PodView]]:
    """`count` of the workload's pods are Pending, the scheduler saying why (`message` in it).

    Such a pod has no node and its PodScheduled condition is False with reason Unschedulable
    (the scheduler's "0/N nodes are available: ..."); `message` is a part of that text, e.g.
    "node(s) had volume node affinity conflict".
    """
    __tracebackhide__ = True

    def pending(s: Snapshot[JSON]) -> list[PodView]:
        said = ((p, _unschedulable(p)) for p in s.values())
        return [PodView.from_json(p) for p, why in said if why is not None and message in why]

    def holds(s: Snapshot[JSON]) -> Satisfied[list[PodView]] | None:
        found = pending(s)
        if len(found) < count:
            return None
        said = _unschedulable(found[0].raw)
        return Satisfied(found, f"{len(found)} pod(s) of {workload} unschedulable: {said}")

    def explain(s: Snapshot[JSON]) -> str:
        lines = [
            f"  {PodView.from_json(p).describe()}: {_unschedulable(p) or 'not unschedulable'}"
            for p in sorted(s.values(), key=_key_of)
        ]
        return (
            f"want {count} pod(s) of {workload} unschedulable with {message!r} in the "
            "scheduler's message; pods now:\n" + ("\n".join(lines) or "  (no pods)")
        )

    result = workload.cluster.wait(
        "pods",
        holds,
        timeout=timeout,
        description=f"{count} pod(s) of {workload} to be unschedulable",
        namespace=workload.namespace,
        label_selector=workload.selector,
        explain=explain,
        count=lambda s: (len(pending(s)), count),
    )
    return report(result, "pods unschedulable")


def _key_of(pod: JSON) -> str:
    return str((pod.get("metadata") or {}).get("name", ""))


def assert_eviction_halted(
    workload: Workload, nodes: Iterable[str], *, hold: float, timeout: float | None = None
) -> Result[list[PodView]]:
    """For `hold` seconds no NoExecute taint comes to `nodes`, and the pods there stay bound.

    What upstream's node lifecycle controller does when it stops evicting: a small zone in
    Partial Disruption (more than 2 and at least 55% of its nodes not Ready) gets an eviction
    rate of 0, and with every zone down it assumes the control plane is cut off
    (pkg/controller/nodelifecycle/node_lifecycle_controller.go, handleDisruption,
    ReducedQPSFunc); a restarted controller gives every node a fresh grace period. The
    unreachable NoSchedule taint still comes: it is not rate-limited.

    A node tainted (unreachable or not-ready NoExecute) before the check starts was tainted
    before the rate fell (upstream does not take such taints back), so it is left out; at least
    one of `nodes` must be untainted. The workload's pods on the untainted nodes must still be
    there, bound and not terminating, when the hold ends; returns them. Fails at the first
    NoExecute taint, naming it. `timeout` (default: the phase's remaining SLO) must leave room
    for `hold`.
    """
    __tracebackhide__ = True
    asked = set(nodes)
    if not asked:
        raise ConfigError("assert_eviction_halted needs at least one node")
    if hold <= 0:
        raise ConfigError(f"hold must be > 0 seconds, got {hold}")
    deadline, bounded = deadline_for(timeout)
    left = _left(deadline)
    if left < hold:
        limit = "the runbook phase's SLO" if bounded else "the timeout"
        raise WaitTimeout(
            f"cannot watch {len(asked)} node(s) for {hold:.1f}s without a NoExecute taint: "
            f"{limit} leaves {left:.1f}s"
        )
    cluster = workload.cluster

    def no_execute(node: NodeView) -> list[Taint]:
        return [
            t
            for t in node.taints
            if t.effect == "NoExecute" and t.key in (TAINT_UNREACHABLE, TAINT_NOT_READY)
        ]

    views = {n.name: n for n in cluster.nodes() if n.name in asked}
    tainted_before = {name for name, n in views.items() if no_execute(n)}
    watched = set(views) - tainted_before
    if not watched:
        taints = "; ".join(
            f"{name}: {', '.join(map(str, no_execute(views[name])))}" for name in sorted(views)
        )
        raise ClusterCheckFailed(
            f"eviction was not halted: every node already carries a NoExecute taint ({taints})"
        )
    bound = {p.uid: p for p in workload.pods() if p.node in watched}

    def tainted(s: Snapshot[JSON]) -> Satisfied[str] | None:
        for raw in s.values():
            node = NodeView.from_json(raw)
            if node.name in watched and (found := no_execute(node)):
                return Satisfied(f"node {node.name} got taint {found[0]}")
        return None

    try:
        got = cluster.wait(
            "nodes", tainted, timeout=hold, description="a NoExecute taint", show_progress=False
        )
    except WaitTimeout:
        pass
    else:
        raise ClusterCheckFailed(
            f"eviction was not halted: {got.value} within {hold:.1f}s of the check's start"
        )
    now = {p.uid: p for p in workload.pods()}
    gone = [p for uid, p in bound.items() if uid not in now or now[uid].node not in watched]
    leaving = [now[uid] for uid in bound if uid in now and now[uid].deleting]
    if gone or leaving:
        raise ClusterCheckFailed(
            f"pods of {workload} left {', '.join(sorted(watched))} although no NoExecute taint "
            f"came:\n{_pod_lines([*gone, *leaving])}"
        )
    stayed = [now[uid] for uid in bound]
    earlier = f" ({len(tainted_before)} tainted before)" if tainted_before else ""
    return report(
        Result(
            stayed,
            datetime.now(UTC),
            f"no NoExecute taint on {len(watched)} node(s){earlier} for {hold:.1f}s; "
            f"{len(stayed)} pod(s) still bound",
        ),
        "eviction halted",
    )


def assert_endpoints_exclude_node(
    workload: Workload, node: str, *, min_ready: int = 1, timeout: float | None = None
) -> Result[list[JSON]]:
    """The workload's Service has no ready endpoint on `node`, and at least `min_ready` left."""
    __tracebackhide__ = True
    if workload.service is None:
        raise ConfigError(f"{workload} has no Service, so no endpoints to check")
    service = f"{workload.namespace}/{workload.service}"

    def endpoints(s: Snapshot[JSON]) -> list[JSON]:
        return [ep for sl in s.values() for ep in sl.get("endpoints") or []]

    def holds(s: Snapshot[JSON]) -> Satisfied[list[JSON]] | None:
        ready = [ep for ep in endpoints(s) if (ep.get("conditions") or {}).get("ready")]
        if any(ep.get("nodeName") == node for ep in ready) or len(ready) < min_ready:
            return None
        return Satisfied(ready, f"{len(ready)} ready endpoint(s) of {service}, none on {node}")

    def explain(s: Snapshot[JSON]) -> str:
        lines = [
            f"  {ep.get('addresses')} on {ep.get('nodeName')} conditions={ep.get('conditions')}"
            for ep in endpoints(s)
        ]
        return (
            f"want no ready endpoint on {node} and at least {min_ready} ready; "
            f"endpoints of {service}:\n" + ("\n".join(lines) or "  (none)")
        )

    result = workload.cluster.wait(
        "endpointslices",
        holds,
        timeout=timeout,
        description=f"endpoints of {service} to exclude node {node}",
        namespace=workload.namespace,
        label_selector=f"kubernetes.io/service-name={workload.service}",
        explain=explain,
    )
    return report(result, "endpoints exclude the node")


def assert_rebalanced(
    workload: Workload,
    *,
    nodes: Iterable[str] | None = None,
    max_skew: int = 1,
    timeout: float | None = None,
) -> Result[dict[str, int]]:
    """Live pods spread over `nodes` (default: Ready, schedulable, untainted) within a skew.

    The value is the number of live pods per node of `nodes`.
    """
    __tracebackhide__ = True
    if nodes is None:
        nodes = [
            n.name
            for n in workload.cluster.nodes()
            if n.ready == "True"
            and not n.unschedulable
            and not any(t.effect in ("NoSchedule", "NoExecute") for t in n.taints)
        ]
    eligible = sorted(nodes)

    def spread(s: Snapshot[PodView]) -> tuple[dict[str, int], dict[str, int], int]:
        counts = dict.fromkeys(eligible, 0)
        elsewhere: dict[str, int] = {}
        for pod in s.values():
            if pod.deleting:
                continue
            where = pod.node or "<unscheduled>"
            if where in counts:
                counts[where] += 1
            else:
                elsewhere[where] = elsewhere.get(where, 0) + 1
        skew = max(counts.values()) - min(counts.values()) if counts else 0
        return counts, elsewhere, skew

    def balanced(s: Snapshot[PodView]) -> Satisfied[dict[str, int]] | None:
        counts, elsewhere, skew = spread(s)
        if skew > max_skew or elsewhere:
            return None
        return Satisfied(counts, f"{workload} spread with skew {skew} over {counts}")

    def explain(s: Snapshot[PodView]) -> str:
        counts, elsewhere, skew = spread(s)
        text = f"skew {skew} (want at most {max_skew}) over {counts}"
        if elsewhere:
            text += f"; pods on other nodes: {elsewhere}"
        return f"{text}; pods now:\n{_pod_lines(s.values())}"

    result = workload.cluster.wait(
        "pods",
        balanced,
        timeout=timeout,
        description=f"{workload} to be rebalanced over {', '.join(eligible) or 'no node'}",
        namespace=workload.namespace,
        label_selector=workload.selector,
        explain=explain,
        project=PodView.slim,
    )
    return report(result, "rebalanced")


# --------------------------------------------------------------------------- nodes


def assert_node_unreachable(
    cluster: Cluster, node: str, *, no_execute: bool = True, timeout: float | None = None
) -> Result[NodeView | None]:
    """The node turned Ready=Unknown and carries the unreachable NoExecute taint.

    With `no_execute=False`, the unreachable NoSchedule taint is enough: the one the controller
    sets at once, while the NoExecute one waits for its zone's eviction rate (none in a small
    zone in Partial Disruption; `assert_eviction_halted` checks that it does not come).
    """
    __tracebackhide__ = True
    effect = "NoExecute" if no_execute else "NoSchedule"
    result = cluster.wait_node(
        node,
        lambda n: n is not None and n.ready == "Unknown" and n.has_taint(TAINT_UNREACHABLE, effect),
        timeout=timeout,
        description=f"to be Unknown with the unreachable:{effect} taint",
    )
    return report(result, "node unreachable")


def assert_node_isolated(
    cluster: Cluster, node: str, *, timeout: float | None = None
) -> Result[None]:
    """The Node object is gone and so are the pods bound to it (pod GC)."""
    __tracebackhide__ = True
    deadline, _ = deadline_for(timeout)
    cluster.wait_node_gone(node, timeout=_left(deadline))

    def gone(s: Snapshot[PodView]) -> Satisfied[None] | None:
        return None if s.objects else Satisfied(None, f"no pod bound to deleted node {node}")

    def explain(s: Snapshot[PodView]) -> str:
        return f"pods still bound to {node}:\n{_pod_lines(s.values())}"

    result = cluster.wait(
        "pods",
        gone,
        timeout=_left(deadline),
        description=f"pods bound to deleted node {node} to be garbage-collected",
        project=PodView.slim,
        field_selector=f"spec.nodeName={node}",
        explain=explain,
    )
    return report(result, "pods garbage-collected")


def assert_node_rejoined(
    cluster: Cluster,
    node: str,
    *,
    like: NodeSnapshot | None = None,
    timeout: float | None = None,
) -> Result[NodeView | None]:
    """The node is Ready and schedulable, carrying the labels and taints of `like`."""
    __tracebackhide__ = True

    def holds(n: NodeView | None) -> bool:
        if n is None or n.ready != "True":
            return False
        if like is not None:
            return not like.differences(n)
        return not n.unschedulable

    try:
        result = cluster.wait_node(
            node, holds, timeout=timeout, description="to rejoin Ready with its labels and taints"
        )
    except ClusterCheckFailed as exc:
        raw = cluster.get_raw("nodes", node)
        if raw is not None and like is not None:
            missing = "\n".join(f"  {m}" for m in like.differences(NodeView.from_json(raw)))
            raise ClusterCheckFailed(f"{exc}\nmissing since the snapshot:\n{missing}") from None
        raise
    return report(result, "labels back" if like is not None else "node Ready")


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


# --------------------------------------------------------------------------- pod history


@dataclass
class PodLife:
    """One pod (one UID) as a history saw it: where it ran, and when it was available.

    `changes` lists (sequence, time, available, state) each time its availability (Ready and
    not terminating, as a PodDisruptionBudget counts it) changed; `state` is how it looked.
    """

    uid: str
    name: str
    identity: str
    first_seen: int
    node: str | None = None
    ip: str | None = None
    running_since: datetime | None = None
    running_until: datetime | None = None
    last_seen: datetime | None = None
    gone: bool = False
    changes: list[tuple[int, datetime, bool, str]] = field(default_factory=list)

    def describe(self) -> str:
        """Name, node and address, for failure messages."""
        return f"pod {self.name} uid {self.uid[:8]} on node {self.node or '?'} ({self.ip or '-'})"

    def available_at(self, seq: int) -> tuple[bool, str] | None:
        """Its availability and state once event `seq` was seen (None: not seen yet)."""
        found = None
        for change in self.changes:
            if change[0] > seq:
                break
            found = (change[2], change[3])
        return found


class PodHistory:
    """Records, from a watch, each pod of a workload: where it ran, when it was available.

    A context manager: `with pod_history(web) as history:` watches while the block runs and
    stops when it ends, however it ends. The identity of a pod is its name (a StatefulSet
    identity) unless `label` names a label holding it.
    """

    def __init__(self, workload: Workload, *, label: str | None = None) -> None:
        self.workload = workload
        self.label = label
        self.pods: dict[str, PodLife] = {}
        self.started = datetime.now(UTC)  # from the first list on, once entered
        self.errors: list[BaseException] = []
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listed = threading.Event()
        self._thread: threading.Thread | None = None

    # -- recording ---------------------------------------------------------------------

    def _record(self, etype: str, obj: JSON) -> None:
        meta = obj["metadata"]
        uid = str(meta.get("uid", ""))
        now = datetime.now(UTC)
        pod = PodView.from_json(obj, keep_raw=False)
        gone = etype == "DELETED"
        running = not gone and pod.phase == "Running"
        available = running and pod.ready and not pod.deleting
        state = "deleted" if gone else _state(pod)
        with self._lock:
            seq = next(self._seq)
            life = self.pods.get(uid)
            if life is None:
                labels = meta.get("labels") or {}
                identity = str(labels.get(self.label, pod.name)) if self.label else pod.name
                life = self.pods[uid] = PodLife(uid, pod.name, identity, seq)
            life.node = pod.node or life.node
            life.ip = pod.ip or life.ip
            life.gone = gone
            if not gone:
                life.last_seen = now
            if running and life.running_since is None:
                life.running_since = now
            finished = gone or pod.phase in ("Succeeded", "Failed")
            if finished and life.running_since is not None and life.running_until is None:
                life.running_until = now
            if not life.changes or life.changes[-1][2] != available:
                life.changes.append((seq, now, available, state))

    def __enter__(self) -> PodHistory:
        def watch() -> None:
            def stopped(_: Snapshot[JSON]) -> Satisfied[None] | None:
                self._listed.set()
                return Satisfied(None) if self._stop.is_set() else None

            try:
                self.workload.cluster.wait(
                    "pods",
                    stopped,
                    timeout=24 * 3600,
                    description=f"the pod history of {self.workload}",
                    namespace=self.workload.namespace,
                    label_selector=self.workload.selector,
                    on_event=self._record,
                    recheck_every=0.5,
                    show_progress=False,
                )
            except BaseException as exc:  # reported by the checks that read the history
                self.errors.append(exc)
                self._listed.set()

        # A context of its own: the history is no wait of the phase that started it.
        context = contextvars.Context()
        self._thread = threading.Thread(
            target=context.run, args=(watch,), name="k8sdr-pod-history", daemon=True
        )
        self._thread.start()
        # Watching from here on: the block's first change is seen against the listed state.
        self._listed.wait(timeout=60)
        self.started = datetime.now(UTC)
        self.workload.history = self
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._catch_up()

    def _catch_up(self) -> None:
        """Bring the history up to the pods as they are now: events may be in flight at exit.

        Read once more, a pod that vanished is recorded gone (running until last seen), then
        the pods now not available, then those available: unavailability first, so a change
        the watch had not delivered never hides a dip in availability.
        """
        try:
            listed = self.workload.cluster.pods(
                self.workload.namespace, label_selector=self.workload.selector
            )
        except ToolError as exc:  # the block's own outcome must not be masked
            self.errors.append(exc)
            return
        present = {p.uid for p in listed}
        now = datetime.now(UTC)
        with self._lock:
            for life in self.pods.values():
                if life.uid in present or life.gone:
                    continue
                life.gone = True
                if life.running_since is not None and life.running_until is None:
                    life.running_until = life.last_seen or now
                if life.changes and life.changes[-1][2]:
                    life.changes.append((next(self._seq), now, False, "deleted"))
        for pod in sorted(listed, key=lambda p: _live(p)):
            self._record("LISTED", pod.raw)

    @property
    def running(self) -> bool:
        """Whether the watch is still running."""
        return self._thread is not None and self._thread.is_alive()

    # -- reading -----------------------------------------------------------------------

    def identities(self) -> dict[str, list[PodLife]]:
        """The pods of each identity, oldest first."""
        with self._lock:
            lives = sorted(self.pods.values(), key=lambda p: p.first_seen)
        out: dict[str, list[PodLife]] = {}
        for life in lives:
            out.setdefault(life.identity, []).append(life)
        return out

    def overlaps(self) -> list[str]:
        """Identities the API showed Running twice at the same time, described."""
        found = []
        for ident, lives in sorted(self.identities().items()):
            ran = [p for p in lives if p.running_since is not None]
            for a, b in itertools.pairwise(ran):
                assert b.running_since is not None
                if a.running_until is None or a.running_until > b.running_since:
                    found.append(
                        f"{ident}: {a.describe()} still Running when {b.describe()} started "
                        f"at {b.running_since.isoformat()}"
                    )
        return found

    def floor(self, since: datetime, until: datetime) -> tuple[int, datetime, int, datetime]:
        """The fewest pods available in [since, until].

        Returns (count, when it was reached, the event sequence then, the last change seen).
        """
        with self._lock:
            lives = list(self.pods.values())
        available: dict[str, bool] = {}
        base = 0
        moves: list[tuple[int, datetime, str, bool]] = []
        for life in lives:
            for seq, when, ok, _ in life.changes:
                if when <= since:
                    available[life.uid] = ok
                    base = max(base, seq)
                elif when <= until:
                    moves.append((seq, when, life.uid, ok))
        count = sum(available.values())
        lowest, low_at, low_seq, changed = count, since, base, since
        for seq, when, uid, ok in sorted(moves):
            count += int(ok) - int(available.get(uid, False))
            available[uid] = ok
            changed = when
            if count < lowest:
                lowest, low_at, low_seq = count, when, seq
        return lowest, low_at, low_seq, changed

    def state_at(self, seq: int) -> list[tuple[PodLife, bool, str]]:
        """Each pod known once event `seq` was seen: (pod, available, state)."""
        with self._lock:
            lives = sorted(self.pods.values(), key=lambda p: p.name)
        out = []
        for life in lives:
            seen = life.available_at(seq)
            if seen is not None and seen[1] != "deleted":
                out.append((life, seen[0], seen[1]))
        return out


def pod_history(workload: Workload, *, label: str | None = None) -> PodHistory:
    """A watch of the workload's pods for `with`: the history checks read what it recorded."""
    return PodHistory(workload, label=label)


def _history_of(workload: Workload) -> PodHistory:
    history = workload.history
    if not isinstance(history, PodHistory):
        raise ConfigError(
            f"no pod history of {workload}: run the experiment inside `with pod_history(...)`"
        )
    if history.errors:
        failure = history.errors[0]
        raise ToolError(f"the pod history of {workload} failed: {failure}") from failure
    return history


def _ask(address: str, port: int) -> JSON | str:
    """What answers GET / on a pod's own address: its JSON, or why nothing did."""
    conn = http.client.HTTPConnection(address, port, timeout=POD_PROBE_TIMEOUT)
    try:
        conn.request("GET", "/")
        body = conn.getresponse().read()
    except (OSError, http.client.HTTPException) as exc:
        return type(exc).__name__
    finally:
        conn.close()
    try:
        answer = json.loads(body)
    except ValueError:
        return "no JSON answer"
    return answer if isinstance(answer, dict) else "no JSON answer"


def assert_no_split_brain(workload: Workload) -> Result[list[str]]:
    """No identity of the workload ever ran twice: in the API's history, or on the data plane.

    For each identity that was replaced, the old pod's own address is asked who it is: an old
    pod that still answers (its node was deleted while its machine kept running, as after a
    partition) runs beside its replacement. Where pod addresses cannot be reached from the test
    runner, an old pod can only be found through the API's history. The value is the replaced
    identities.
    """
    __tracebackhide__ = True
    history = _history_of(workload)
    found = [f"{o} (the API showed both Running)" for o in history.overlaps()]
    replaced: list[str] = []
    silent: list[str] = []
    for ident, lives in sorted(history.identities().items()):
        current = [p for p in lives if p.running_since is not None and p.running_until is None]
        if len(lives) < 2 or not current:
            continue
        replaced.append(ident)
        newest = current[-1]
        for old in lives:
            if old is newest or old.ip is None or old.ip == newest.ip:
                continue
            answer = _ask(old.ip, workload.port)
            if isinstance(answer, dict) and answer.get("pod") == old.name:
                found.append(
                    f"{ident}: {old.describe()} still answers on its address (as node "
                    f"{answer.get('node') or '?'}) while its replacement {newest.describe()} "
                    "runs"
                )
            else:
                silent.append(f"{old.ip}: {answer if isinstance(answer, str) else 'another pod'}")
    if found:
        raise ClusterCheckFailed(
            f"split brain in {workload}:\n" + "\n".join(f"  {f}" for f in found)
        )
    observed = f"no identity of {workload} ran twice"
    if replaced:
        observed += f" ({', '.join(replaced)} replaced; old addresses: {', '.join(silent)})"
    return report(Result(replaced, datetime.now(UTC), observed), "no split brain")


def assert_min_available(
    workload: Workload, n: int, *, during: PhaseSpan | None = None
) -> Result[int]:
    """At least `n` of the workload's pods were available at every moment of a phase.

    Available is Ready and not terminating, as a PodDisruptionBudget counts. The span is
    `during` (a phase record), else the runbook phase the check runs in (from its start until
    now), else the whole pod history. The value is the fewest available at once.
    """
    __tracebackhide__ = True
    history = _history_of(workload)
    span = during if during is not None else current_phase()
    # Nothing is known of the pods before the history's first list.
    since = max(span.started, history.started) if span is not None else history.started
    until = (span.ended if span is not None else None) or datetime.now(UTC)
    lowest, when, seq, changed = history.floor(since, until)
    if lowest < n:
        pods = history.state_at(seq)
        up = ", ".join(f"{p.name} on {p.node}" for p, ok, _ in pods if ok) or "none"
        down = "\n".join(f"  {p.describe()} ({state})" for p, ok, state in pods if not ok)
        raise ClusterCheckFailed(
            f"{workload}: only {lowest} pod(s) available at {when.isoformat()} (want at least "
            f"{n}); available then: {up}; not available:\n{down or '  (none known)'}"
        )
    observed = f"at least {lowest} pod(s) of {workload} available throughout (want {n})"
    return report(Result(lowest, max(changed, since), observed), f"{n} available")
