"""What the cluster did and what users felt during an experiment, without the test marking it.

A `Recorder` watches, while a test runs, the nodes, and the pods, EndpointSlices and Events of
the test's namespace (one watch connection per kind), and puts their transitions on the
timeline: a node NotReady or back, taints added or removed, cordons, pods created, scheduled,
Ready, deleted or evicted, endpoints changed, the cluster's own Events. It also hears the
test's undo stack (every fault made and undone: a machine killed, a node drained) and its
load balancers (each reload or runtime change), and keeps the traffic probes made through them,
whose figures it reports with the requests that went to a node while it was drained or dead.

It is the test's own record: the runbook's marks stay the test's words.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pytest_k8sdr.cluster import JSON, Cluster
from pytest_k8sdr.lb.base import JournaledDrains, LoadBalancer
from pytest_k8sdr.lb.errors import LBConfigError
from pytest_k8sdr.lb.probe import Outage, TrafficProbe, traffic_figures
from pytest_k8sdr.undo import REGISTRY, UndoEntry, UndoStack

log = logging.getLogger(__name__)

#: Machine faults after which a node serves nothing (a partition or a stopped kubelet leave
#: its pods serving: not an outage for traffic).
DEAD_FAULTS = frozenset({"kill", "stop", "freeze"})
DRAIN_KINDS = frozenset({"nginx-drain", "haproxy-drain"})

#: The lanes of the timeline, top to bottom.
LANES = ("faults", "lb", "nodes", "pods", "endpoints", "events")


@dataclass(frozen=True)
class Event:
    """One transition on the timeline: when (wall clock, seconds), which lane, what."""

    t: float
    lane: str
    label: str
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        """As JSON, with the time also in ISO form."""
        return {
            "t": round(self.t, 3),
            "at": datetime.fromtimestamp(self.t, UTC).isoformat(),
            "lane": self.lane,
            "label": self.label,
            "detail": self.detail,
        }


class Recorder:
    """The test's recorder: cluster transitions, faults, LB changes and traffic, on one clock.

    `enabled=False` keeps the traffic figures and what the undo stack and load balancers say,
    but opens no watch (the recorder's overhead is the watches').
    """

    def __init__(self, undo: UndoStack | None = None, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.events: list[Event] = []
        self.probes: list[TrafficProbe] = []
        self._lbs: list[LoadBalancer] = []
        self._lb_changes: list[tuple[float, str]] = []
        self._outages: dict[int, Outage] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._cluster: Cluster | None = None
        self._watched: set[str] = set()
        self._state: dict[str, dict[str, Any]] = {}
        self._undo = undo
        if undo is not None:
            undo.observers.append(self._undo_event)

    # -- what feeds it -------------------------------------------------------------------

    def add(self, lane: str, label: str, detail: str = "", at: float | None = None) -> Event:
        """Put a transition on the timeline (now, or at `at`, wall-clock seconds)."""
        event = Event(time.time() if at is None else at, lane, label, detail)
        with self._lock:
            self.events.append(event)
        return event

    def add_probe(self, probe: TrafficProbe) -> None:
        """Report this traffic probe's figures with the test's."""
        with self._lock:
            if probe not in self.probes:
                self.probes.append(probe)

    def add_lb(self, lb: LoadBalancer) -> None:
        """Hear the load balancer's reloads and runtime changes; map node names through it."""
        with self._lock:
            self._lbs.append(lb)
        if isinstance(lb, JournaledDrains):
            lb.listeners.append(lambda what: self._lb_changed(lb.name, what))

    def _lb_changed(self, name: str, what: str) -> None:
        now = time.time()
        with self._lock:
            self._lb_changes.append((now, what))
        self.add("lb", f"LB reloaded: {what}", name, at=now)

    def _undo_event(self, what: str, entry: UndoEntry) -> None:
        record = entry.record
        try:
            kind = REGISTRY.kind_of(record)
            disruption = REGISTRY.load(record)
        except Exception:  # an unknown kind is the undo stack's to report, not ours
            return
        if not kind.disruptive:
            return
        lane = "lb" if record.kind in DRAIN_KINDS else "faults"
        data = record.data
        now = time.time()
        if what == "made":
            self.add(lane, disruption.summary(), at=now)
            node = record.node or data.get("node")
            outage: Outage | None = None
            if record.kind in DRAIN_KINDS and isinstance(data.get("address"), str):
                outage = Outage(str(node or data["address"]), "drained", now, None, data["address"])
            elif record.kind == "machine" and data.get("fault") in DEAD_FAULTS and node:
                outage = Outage(str(node), str(data["fault"]), now, None, self._address(str(node)))
            if outage is not None:
                with self._lock:
                    self._outages[id(entry)] = outage
        else:
            self.add(lane, entry.description, at=now)
            with self._lock:
                open_outage = self._outages.get(id(entry))
                if open_outage is not None:
                    self._outages[id(entry)] = Outage(
                        open_outage.node,
                        open_outage.why,
                        open_outage.since,
                        now,
                        open_outage.address,
                    )

    def _address(self, node: str) -> str | None:
        for lb in list(self._lbs):
            try:
                return lb.address_of(node)
            except LBConfigError:
                continue
        return None

    # -- watching the cluster ----------------------------------------------------------

    def watch(self, cluster: Cluster, namespace: str) -> None:
        """Watch the nodes, and the namespace's pods, EndpointSlices and Events, until `stop`."""
        if not self.enabled or self._stopping.is_set():
            return
        self._cluster = cluster
        wanted = [("nodes", None), ("pods", namespace), ("endpointslices", namespace)]
        wanted.append(("events", namespace))
        for kind, ns in wanted:
            key = f"{kind}/{ns or ''}"
            if key in self._watched:
                continue
            self._watched.add(key)
            ready = threading.Event()
            thread = threading.Thread(
                target=self._follow,
                args=(cluster, kind, ns, ready),
                name=f"k8sdr-recorder {key}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()
            # Listed before the test goes on: what it does next is a transition, not the start.
            ready.wait(timeout=30)

    def _follow(self, cluster: Cluster, kind: str, ns: str | None, ready: threading.Event) -> None:
        handler = getattr(self, f"_on_{kind}")

        def on_event(etype: str, obj: JSON) -> None:
            try:
                handler(etype, obj)
            except Exception:  # an odd object must not end the recording
                log.exception("recorder: cannot read %s %s", kind, etype)

        try:
            cluster.follow(kind, on_event, self._stopping, namespace=ns, on_listed=ready.set)
        except Exception as exc:  # the recording is a report: it never fails the test
            if not self._stopping.is_set():
                log.warning("recorder: watch of %s ended: %s", kind, exc)
                self.add("events", f"recorder lost its watch of {kind}", str(exc))
        finally:
            ready.set()

    def stop(self) -> None:
        """Stop watching (idempotent); returns once every watch has ended."""
        if self._cluster is not None:
            self._cluster.stop_following(self._stopping)
        else:
            self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []
        if self._undo is not None and self._undo_event in self._undo.observers:
            self._undo.observers.remove(self._undo_event)

    def _changed(self, key: str, now: Mapping[str, Any]) -> dict[str, Any] | None:
        """The previous state of `key` (None for a new one), `now` kept as its state."""
        with self._lock:
            before = self._state.get(key)
            self._state[key] = dict(now)
        return before

    def _on_nodes(self, etype: str, obj: JSON) -> None:
        meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
        name = meta["name"]
        key = f"node/{name}"
        if etype == "DELETED":
            with self._lock:
                self._state.pop(key, None)
            self.add("nodes", f"{name} deleted")
            return
        ready = next(
            (c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"),
            None,
        )
        taints = sorted(f"{t['key']}:{t.get('effect', '')}" for t in spec.get("taints") or [])
        now = {"ready": ready, "taints": taints, "cordoned": bool(spec.get("unschedulable"))}
        before = self._changed(key, now)
        if etype == "LISTED":
            return
        if before is None:
            self.add("nodes", f"{name} registered", f"Ready={ready}")
            return
        if before["ready"] != ready:
            word = {"True": "Ready", "False": "NotReady", "Unknown": "Ready=Unknown"}
            self.add("nodes", f"{name} {word.get(str(ready), f'Ready={ready}')}")
        for taint in sorted(set(taints) - set(before["taints"])):
            self.add("nodes", f"{name} taint added", taint)
        for taint in sorted(set(before["taints"]) - set(taints)):
            self.add("nodes", f"{name} taint removed", taint)
        if before["cordoned"] != now["cordoned"]:
            self.add("nodes", f"{name} {'cordoned' if now['cordoned'] else 'uncordoned'}")

    def _on_pods(self, etype: str, obj: JSON) -> None:
        meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
        name = meta["name"]
        key = f"pod/{meta.get('namespace')}/{name}"
        if etype == "DELETED":
            with self._lock:
                self._state.pop(key, None)
            self.add("pods", f"pod {name} deleted", spec.get("nodeName") or "")
            return
        ready = next(
            (
                c.get("status") == "True"
                for c in status.get("conditions") or []
                if c.get("type") == "Ready"
            ),
            False,
        )
        node = spec.get("nodeName")
        now = {"node": node, "ready": ready, "deleting": bool(meta.get("deletionTimestamp"))}
        before = self._changed(key, now)
        if etype == "LISTED":
            return
        if before is None:
            self.add("pods", f"pod {name} created")
            before = {"node": None, "ready": False, "deleting": False}
        if node and not before["node"]:
            self.add("pods", f"pod {name} scheduled", f"to {node}")
        if ready != before["ready"]:
            self.add("pods", f"pod {name} {'Ready' if ready else 'not Ready'}", node or "")
        if now["deleting"] and not before["deleting"]:
            self.add("pods", f"pod {name} terminating", node or "")

    def _on_endpointslices(self, etype: str, obj: JSON) -> None:
        meta = obj["metadata"]
        service = (meta.get("labels") or {}).get("kubernetes.io/service-name", meta["name"])
        key = f"slice/{meta.get('namespace')}/{meta['name']}"
        if etype == "DELETED":
            with self._lock:
                self._state.pop(key, None)
            return
        ready: dict[str, int] = {}
        for endpoint in obj.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is not False:
                node = endpoint.get("nodeName") or "?"
                ready[node] = ready.get(node, 0) + 1
        before = self._changed(key, {"ready": ready})
        if etype == "LISTED" or (before is not None and before["ready"] == ready):
            return
        where = ", ".join(f"{n} {c}" for n, c in sorted(ready.items())) or "none"
        self.add("endpoints", f"{service}: {sum(ready.values())} ready endpoints", where)

    def _on_events(self, etype: str, obj: JSON) -> None:
        if etype not in ("ADDED", "MODIFIED"):
            return
        involved = obj.get("involvedObject") or {}
        what = f"{involved.get('kind', '')} {involved.get('name', '')}".strip()
        reason = obj.get("reason") or ""
        self.add("events", f"{reason}: {what}", obj.get("message") or "")

    # -- the record --------------------------------------------------------------------

    def outages(self) -> list[Outage]:
        """Each node's stretches drained or dead; a drain counted from the LB's reload."""
        with self._lock:
            outages = list(self._outages.values())
            changes = list(self._lb_changes)
        out = []
        for o in outages:
            if o.why == "drained" and o.address is not None:
                took = [t for t, what in changes if t >= o.since and o.address in what]
                if took:
                    o = Outage(o.node, o.why, min(took), o.until, o.address)
            elif o.address is None:
                o = Outage(o.node, o.why, o.since, o.until, self._address(o.node))
            out.append(o)
        return sorted(out, key=lambda o: o.since)

    def traffic(self) -> list[dict[str, object]]:
        """Each probe's figures (`traffic_figures`), in the order the probes were made."""
        outages = self.outages()
        with self._lock:
            probes = list(self.probes)
        return [traffic_figures(p.url, p.records(), outages) for p in probes]

    def to_json(self) -> dict[str, Any]:
        """Events in time order, and the traffic of every probe."""
        with self._lock:
            events = sorted(self.events, key=lambda e: e.t)
        return {"events": [e.to_json() for e in events], "traffic": self.traffic()}
