"""Node lifecycle controller (pkg/controller/nodelifecycle/node_lifecycle_controller.go).

Heartbeats (Lease renewTime or the Ready condition's lastHeartbeatTime) reset a local probe
timestamp; past the grace period the Ready/MemoryPressure/DiskPressure/PIDPressure conditions
become Unknown. NoSchedule taints follow conditions and spec.unschedulable at once; NoExecute
taints go through one rate-limited queue per zone, whose rate follows the zone's health.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from dataclasses import dataclass, field

from pytest_k8sdr.sim.apimachinery.clock import now_rfc3339, parse_rfc3339
from pytest_k8sdr.sim.apimachinery.errors import ApiError
from pytest_k8sdr.sim.apimachinery.meta import Key, get_condition, meta
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.apimachinery.wellknown import (
    LABEL_REGION,
    LABEL_ZONE,
    TAINT_DISK_PRESSURE,
    TAINT_MEMORY_PRESSURE,
    TAINT_NETWORK_UNAVAILABLE,
    TAINT_NOT_READY,
    TAINT_PID_PRESSURE,
    TAINT_UNREACHABLE,
    TAINT_UNSCHEDULABLE,
)
from pytest_k8sdr.sim.controllers.controller import Controller
from pytest_k8sdr.sim.controllers.podutil import node_ready_status, pod_is_ready, set_pod_condition
from pytest_k8sdr.sim.controllers.taints import node_taints, taint_key
from pytest_k8sdr.sim.controllers.workqueue import WorkQueue

NAME = "nodelifecycle"
COMPONENT = "node-controller"
# NodeEvictionPeriod: how often the NoExecute tainting queues are worked.
NO_EXECUTE_PASS_PERIOD = 0.1
EXCLUDE_DISRUPTION_LABEL = "node.kubernetes.io/exclude-disruption"
WATCHED_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")

# nodeConditionToTaintKeyStatusMap.
CONDITION_TAINTS: dict[str, dict[str, str]] = {
    "Ready": {"False": TAINT_NOT_READY, "Unknown": TAINT_UNREACHABLE},
    "MemoryPressure": {"True": TAINT_MEMORY_PRESSURE},
    "DiskPressure": {"True": TAINT_DISK_PRESSURE},
    "NetworkUnavailable": {"True": TAINT_NETWORK_UNAVAILABLE},
    "PIDPressure": {"True": TAINT_PID_PRESSURE},
}
CONDITION_TAINT_KEYS = {k for m in CONDITION_TAINTS.values() for k in m.values()}

STATE_INITIAL = "Initial"
STATE_NORMAL = "Normal"
STATE_FULL = "FullDisruption"
STATE_PARTIAL = "PartialDisruption"

log = logging.getLogger("pytest_k8sdr.sim.controllers")


def zone_key(node: JSON) -> str:
    """Region and zone joined as nodetopology.GetZoneKey does; "" for unlabeled nodes."""
    labels = meta(node).get("labels") or {}
    region = labels.get(LABEL_REGION) or labels.get("failure-domain.beta.kubernetes.io/region", "")
    zone = labels.get(LABEL_ZONE) or labels.get("failure-domain.beta.kubernetes.io/zone", "")
    if not region and not zone:
        return ""
    return f"{region}:\x00:{zone}"


class TokenBucket:
    """flowcontrol token bucket with burst 1 (qps <= 0: never accepts)."""

    def __init__(self, qps: float, now: float) -> None:
        self.qps = qps
        self.tokens = 1.0
        self.last = now

    def try_accept(self, now: float) -> bool:
        """Take a token if one is there."""
        if self.qps <= 0:
            return False
        self.tokens = min(1.0, self.tokens + (now - self.last) * self.qps)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass
class ZoneQueue:
    """RateLimitedTimedQueue: node names waiting for a NoExecute taint, in order."""

    limiter: TokenBucket
    items: dict[str, str] = field(default_factory=dict)  # name -> uid

    def swap_limiter(self, qps: float, now: float) -> None:
        """SwapLimiter: a new bucket, drained when the old one was (burst 1)."""
        if self.limiter.qps == qps:
            return
        new = TokenBucket(qps, now)
        if qps > 0 and not self.limiter.try_accept(now):
            new.try_accept(now)
        self.limiter = new


@dataclass
class NodeHealth:
    """nodeHealthData: what the controller saw last and when (its own clock)."""

    probe_timestamp: float
    ready_transition_timestamp: float
    heartbeat: str | None
    ready_status: str | None
    lease_renew: str | None = None


class NodeLifecycleController(Controller):
    """Turns missed heartbeats into Unknown conditions, taints and not-ready pods."""

    name = NAME

    def start(self) -> list[asyncio.Task[None]]:
        """Start the monitor pass, the NoExecute pass and the node/pod update workers."""
        loop = asyncio.get_running_loop()
        self.clock = loop.time
        self.health: dict[str, NodeHealth] = {}
        self.known: dict[str, str] = {}  # name -> uid
        self.zone_states: dict[str, str] = {}
        self.zone_queues: dict[str, ZoneQueue] = {}
        self.nodes = self.informers.get("nodes")
        self.leases = self.informers.get("leases")
        self.pods = self.informers.get("pods")
        self.pods_by_node = self.informers.pods_by_node
        self.no_schedule_queue: WorkQueue[str] = WorkQueue(
            f"{NAME}-noschedule", self._do_no_schedule_tainting
        )
        self.pod_queue: WorkQueue[Key] = WorkQueue(f"{NAME}-pods", self._process_pod)
        self.watch(self.nodes, self._on_node)
        self.watch(self.pods, self._on_pod)
        return [
            self._spawn(self.no_schedule_queue.run(), "noschedule"),
            self._spawn(self.pod_queue.run(), "pods"),
            self._spawn(self._monitor_loop(), "monitor"),
            self._spawn(self._no_execute_loop(), "noexecute"),
        ]

    # --- handlers ---------------------------------------------------------------------------

    def _on_node(self, etype: str, old: JSON | None, new: JSON | None) -> None:
        if new is not None:
            self.no_schedule_queue.add(meta(new)["name"])
            zone = zone_key(new)
            if zone not in self.zone_states:
                # addPodEvictorForNewZone
                self.zone_states[zone] = STATE_INITIAL
                self.zone_queues[zone] = ZoneQueue(
                    TokenBucket(self.profile.node_eviction_rate, self.clock())
                )

    def _on_pod(self, etype: str, old: JSON | None, new: JSON | None) -> None:
        # podUpdated: pods bound to a node that is not Ready are marked too (processPod).
        if new is None:
            return
        node_name = (new.get("spec") or {}).get("nodeName")
        if not node_name:
            return
        if old is not None and (old.get("spec") or {}).get("nodeName") == node_name:
            return
        node = self.nodes.get(None, node_name)
        if node is not None and node_ready_status(node) != "True" and pod_is_ready(new):
            self.pod_queue.add((meta(new).get("namespace") or "", meta(new)["name"]))

    def _process_pod(self, key: Key) -> None:
        pod = self.pods.get(*key)
        if pod is None:
            return
        node = self.nodes.get(None, (pod.get("spec") or {}).get("nodeName") or "")
        if node is None or node_ready_status(node) == "True":
            return
        self._mark_pod_not_ready(pod, node)

    # --- NoSchedule taints (doNoScheduleTaintingPass) ----------------------------------------

    def _do_no_schedule_tainting(self, name: str) -> None:
        node = self.nodes.get(None, name)
        if node is None:
            return
        wanted: set[tuple[str, str]] = set()
        for cond in (node.get("status") or {}).get("conditions") or ():
            taint_for = CONDITION_TAINTS.get(str(cond.get("type")), {})
            taint = taint_for.get(str(cond.get("status")))
            if taint:
                wanted.add((taint, "NoSchedule"))
        if (node.get("spec") or {}).get("unschedulable"):
            wanted.add((TAINT_UNSCHEDULABLE, "NoSchedule"))
        have = {
            taint_key(t)
            for t in node_taints(node)
            if t.get("effect") == "NoSchedule"
            and (t.get("key") == TAINT_UNSCHEDULABLE or t.get("key") in CONDITION_TAINT_KEYS)
        }
        if wanted == have:
            return
        self._swap_taints(name, add=wanted - have, remove=have - wanted)

    def _swap_taints(
        self, name: str, *, add: set[tuple[str, str]], remove: set[tuple[str, str]]
    ) -> bool:
        """SwapNodeControllerTaint on the live object; False when the node is gone."""
        try:
            node = self.store.get("nodes", None, name)
        except ApiError as exc:
            if exc.code == 404:
                return False
            raise
        taints = [t for t in node_taints(node) if taint_key(t) not in remove]
        present = {taint_key(t) for t in taints}
        now = now_rfc3339()
        for key, effect in sorted(add):
            if (key, effect) not in present:
                # Controller-added taints carry timeAdded (SwapNodeControllerTaint).
                taints.append({"key": key, "effect": effect, "timeAdded": now})
        if taints == node_taints(node):
            return True
        node.setdefault("spec", {})["taints"] = taints
        self.store.update("nodes", None, name, node)
        return True

    # --- monitorNodeHealth ------------------------------------------------------------------

    async def _monitor_loop(self) -> None:
        while True:
            try:
                self._monitor_node_health()
            except Exception:
                log.exception("%s: monitor pass failed", NAME)
            await asyncio.sleep(self.profile.node_monitor_period)

    def _monitor_node_health(self) -> None:
        nodes = list(self.nodes.list())
        current = {meta(n)["name"]: str(meta(n).get("uid")) for n in nodes}
        for name, uid in current.items():
            if self.known.get(name) != uid:
                if name in self.known:
                    self._forget(name, self.known[name])
                self.known[name] = uid
                self.recorder.record(
                    self.nodes.get(None, name) or {},
                    "Node",
                    "Normal",
                    "RegisteredNode",
                    f"Node {name} event: Registered Node {name} in Controller",
                    COMPONENT,
                )
        for name in [n for n in self.known if n not in current]:
            self._forget(name, self.known.pop(name))

        zone_conditions: dict[str, list[str | None]] = {}
        for node in nodes:
            name = meta(node)["name"]
            observed, current_status = self._try_update_node_health(node)
            fresh = self.nodes.get(None, name) or node
            labels = meta(fresh).get("labels") or {}
            if EXCLUDE_DISRUPTION_LABEL not in labels:
                zone_conditions.setdefault(zone_key(fresh), []).append(current_status)
            if current_status is not None and observed is not None:
                # Upstream passes the Ready condition as it was *before* this pass's update, so
                # the NoExecute taint follows one monitor period after Unknown
                # (node_lifecycle_controller.go monitorNodeHealth; observed upstream: +5s, see
                # docs/node-failure-semantics.md).
                self._process_taint_based_eviction(fresh, observed)
            # Report node event only once when status changed.
            if current_status != "True" and observed == "True":
                self.recorder.record(
                    fresh,
                    "Node",
                    "Normal",
                    "NodeNotReady",
                    f"Node {name} status is now: NodeNotReady",
                    COMPONENT,
                )
                self._mark_pods_not_ready(fresh)
        self._handle_disruption(zone_conditions, nodes)

    def _forget(self, name: str, uid: str) -> None:
        self.health.pop(name, None)
        for queue in self.zone_queues.values():
            queue.items.pop(name, None)
        self.recorder.record(
            {"metadata": {"name": name, "uid": uid}},
            "Node",
            "Normal",
            "RemovingNode",
            f"Node {name} event: Removing Node {name} from Controller",
            COMPONENT,
        )

    def _try_update_node_health(self, node: JSON) -> tuple[str | None, str | None]:
        """tryUpdateNodeHealth: (observed Ready status, current Ready status).

        observed is "Unknown" for a node that never posted Ready (upstream's fake condition);
        current is None for such a node until the startup grace period runs out.
        """
        name = meta(node)["name"]
        now = self.clock()
        conditions = (node.get("status") or {}).get("conditions") or []
        ready = get_condition(conditions, "Ready")
        if ready is None:
            observed_status: str | None = "Unknown"
            heartbeat = None
            grace = self.profile.node_startup_grace_period
        else:
            observed_status = str(ready.get("status"))
            heartbeat = ready.get("lastHeartbeatTime")
            grace = self.profile.node_monitor_grace_period
        saved = self.health.get(name)
        if saved is None:
            start = now
            created = parse_rfc3339(meta(node).get("creationTimestamp"))
            if ready is None and created is not None:
                # A node that never posted Ready is timed from its creation (startup grace).
                start = now - max(0.0, time.time() - created)
            saved = NodeHealth(start, start, heartbeat, observed_status)
            self.health[name] = saved
        elif heartbeat != saved.heartbeat:
            saved.probe_timestamp = now
            if observed_status != saved.ready_status:
                saved.ready_transition_timestamp = now
            saved.heartbeat = heartbeat
            saved.ready_status = observed_status
        lease = self.leases.get("kube-node-lease", name)
        if lease is not None:
            renew = (lease.get("spec") or {}).get("renewTime")
            if renew and renew != saved.lease_renew:
                # Either heartbeat suffices: a newer Lease renewal resets the probe timestamp.
                saved.lease_renew = renew
                saved.probe_timestamp = now
        if now <= saved.probe_timestamp + grace:
            return observed_status, (None if ready is None else observed_status)
        new_node = copy.deepcopy(node)
        status = new_node.setdefault("status", {})
        conds: list[JSON] = status.setdefault("conditions", [])
        stamp = now_rfc3339()
        changed = False
        for ctype in WATCHED_CONDITIONS:
            cond = get_condition(conds, ctype)
            if cond is None:
                conds.append(
                    {
                        "type": ctype,
                        "status": "Unknown",
                        "reason": "NodeStatusNeverUpdated",
                        "message": "Kubelet never posted node status.",
                        "lastHeartbeatTime": meta(node).get("creationTimestamp"),
                        "lastTransitionTime": stamp,
                    }
                )
                changed = True
            elif cond.get("status") != "Unknown":
                cond.update(
                    status="Unknown",
                    reason="NodeStatusUnknown",
                    message="Kubelet stopped posting node status.",
                    lastTransitionTime=stamp,
                )
                changed = True
        if changed:
            try:
                latest = self.store.get("nodes", None, name)
            except ApiError as exc:
                if exc.code == 404:
                    return None, None
                raise
            latest["status"] = {**(latest.get("status") or {}), "conditions": conds}
            self.store.update("nodes", None, name, latest, subresource="status")
            saved.ready_status = "Unknown"
            saved.ready_transition_timestamp = now
        return observed_status, "Unknown"

    def _mark_pods_not_ready(self, node: JSON) -> None:
        for pod in list(self.pods_by_node.get(meta(node)["name"], {}).values()):
            self._mark_pod_not_ready(pod, node)

    def _mark_pod_not_ready(self, pod: JSON, node: JSON) -> None:
        """MarkPodsNotReady for one pod (pkg/controller/util/node/controller_utils.go)."""
        if not pod_is_ready(pod):
            return
        ns, name = meta(pod).get("namespace"), meta(pod)["name"]
        try:
            live = self.store.get("pods", ns, name)
            status = live.setdefault("status", {})
            cond = get_condition(status.get("conditions"), "Ready")
            if cond is None or cond.get("status") != "True":
                return
            set_pod_condition(status, {"type": "Ready", "status": "False"})
            self.store.update("pods", ns, name, live, subresource="status")
        except ApiError as exc:
            if exc.code == 404:
                return
            raise
        self.recorder.record(
            live,
            "Pod",
            "Warning",
            "NodeNotReady",
            "Node is not ready",
            COMPONENT,
        )

    # --- NoExecute taints (processTaintBaseEviction, doNoExecuteTaintingPass) ---------------

    def _process_taint_based_eviction(self, node: JSON, ready: str) -> None:
        name = meta(node)["name"]
        keys = {taint_key(t) for t in node_taints(node)}
        unreachable = (TAINT_UNREACHABLE, "NoExecute")
        not_ready = (TAINT_NOT_READY, "NoExecute")
        if ready == "False":
            if unreachable in keys:
                self._swap_taints(name, add={not_ready}, remove={unreachable})
            else:
                self._queue_for_tainting(node)
        elif ready == "Unknown":
            if not_ready in keys:
                self._swap_taints(name, add={unreachable}, remove={not_ready})
            else:
                self._queue_for_tainting(node)
        elif ready == "True":
            self._mark_reachable(node)

    def _queue_for_tainting(self, node: JSON) -> None:
        queue = self.zone_queues.get(zone_key(node))
        if queue is not None:
            queue.items.setdefault(meta(node)["name"], str(meta(node).get("uid")))

    def _mark_reachable(self, node: JSON) -> None:
        name = meta(node)["name"]
        keys = {taint_key(t) for t in node_taints(node)}
        remove = keys & {(TAINT_UNREACHABLE, "NoExecute"), (TAINT_NOT_READY, "NoExecute")}
        if remove:
            self._swap_taints(name, add=set(), remove=remove)
        queue = self.zone_queues.get(zone_key(node))
        if queue is not None:
            queue.items.pop(name, None)

    async def _no_execute_loop(self) -> None:
        while True:
            try:
                self._do_no_execute_tainting_pass()
            except Exception:
                log.exception("%s: NoExecute pass failed", NAME)
            await asyncio.sleep(NO_EXECUTE_PASS_PERIOD)

    def _do_no_execute_tainting_pass(self) -> None:
        now = self.clock()
        for queue in self.zone_queues.values():
            for name in list(queue.items):
                if not queue.limiter.try_accept(now):
                    break
                node = self.nodes.get(None, name)
                if node is None:
                    queue.items.pop(name, None)
                    continue
                ready = node_ready_status(node)
                unreachable = (TAINT_UNREACHABLE, "NoExecute")
                not_ready = (TAINT_NOT_READY, "NoExecute")
                if ready == "False":
                    done = self._swap_taints(name, add={not_ready}, remove={unreachable})
                elif ready == "Unknown":
                    done = self._swap_taints(name, add={unreachable}, remove={not_ready})
                else:
                    done = True
                if done:
                    queue.items.pop(name, None)

    # --- zones (handleDisruption, ComputeZoneState) -----------------------------------------

    def _compute_zone_state(self, statuses: list[str | None]) -> str:
        ready = sum(1 for s in statuses if s == "True")
        not_ready = len(statuses) - ready
        if ready == 0 and not_ready > 0:
            return STATE_FULL
        if (
            not_ready > 2
            and not_ready / (not_ready + ready) >= self.profile.unhealthy_zone_threshold
        ):
            return STATE_PARTIAL
        return STATE_NORMAL

    def _set_limiter(self, zone: str, size: int, state: str) -> None:
        queue = self.zone_queues.get(zone)
        if queue is None:
            return
        p = self.profile
        if state == STATE_PARTIAL:
            # ReducedQPSFunc: small zones stop tainting altogether.
            qps = p.secondary_node_eviction_rate if size > p.large_cluster_size_threshold else 0.0
        else:
            # Normal and FullDisruption (HealthyQPSFunc): the zone is assumed really down.
            qps = p.node_eviction_rate
        queue.swap_limiter(qps, self.clock())

    def _handle_disruption(
        self, zone_conditions: dict[str, list[str | None]], nodes: list[JSON]
    ) -> None:
        new_states: dict[str, str] = {}
        all_fully = True
        for zone, statuses in zone_conditions.items():
            state = self._compute_zone_state(statuses)
            new_states[zone] = state
            if state != STATE_FULL:
                all_fully = False
            if zone not in self.zone_states:
                self.zone_states[zone] = STATE_INITIAL
                self.zone_queues.setdefault(
                    zone, ZoneQueue(TokenBucket(self.profile.node_eviction_rate, self.clock()))
                )
        all_were_fully = True
        for zone in list(self.zone_states):
            if zone not in zone_conditions:
                del self.zone_states[zone]
                continue
            if self.zone_states[zone] != STATE_FULL:
                all_were_fully = False
                break
        if all_fully and all_were_fully:
            return
        if all_fully:
            # Every zone is down: assume the control plane lost its network, not the nodes.
            for node in nodes:
                fresh = self.nodes.get(None, meta(node)["name"])
                if fresh is not None:
                    self._mark_reachable(fresh)
            for zone in self.zone_states:
                queue = self.zone_queues.get(zone)
                if queue is not None:
                    queue.swap_limiter(0.0, self.clock())
                self.zone_states[zone] = STATE_FULL
            return
        if all_were_fully:
            now = self.clock()
            for health in self.health.values():
                health.probe_timestamp = now
                health.ready_transition_timestamp = now
            for zone in self.zone_states:
                self._set_limiter(
                    zone, len(zone_conditions.get(zone, [])), new_states.get(zone, STATE_NORMAL)
                )
                self.zone_states[zone] = new_states.get(zone, STATE_NORMAL)
            return
        for zone, state in list(self.zone_states.items()):
            new_state = new_states.get(zone, STATE_NORMAL)
            if state == new_state:
                continue
            self._set_limiter(zone, len(zone_conditions.get(zone, [])), new_state)
            self.zone_states[zone] = new_state
