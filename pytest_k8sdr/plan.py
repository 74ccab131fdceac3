"""The dry run: the selected experiments rehearsed on a simulated twin of the target.

`Rehearsal.start` opens the target read-only, shapes a twin after it (`pytest_k8sdr.twin`) and
hands the session a backend on the twin: the experiments run there unchanged. Every disruption
the twin's run journals is translated, before it is made on the twin, into what it would be on
the target: the target machine's driver and the exact command (`MachineBase.describe`), the API
call on the target's Node, the target load balancer's entry. What the twin's run measured
(phase durations against their SLOs) is the prediction, and what failed or stayed Pending in it
(a PodDisruptionBudget blocking a drain, pods no node can take) is what would block.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_k8sdr.backends import Backend, launch_sim, open_backend
from pytest_k8sdr.config import Settings
from pytest_k8sdr.errors import ConfigError
from pytest_k8sdr.faults.machines.base import Action
from pytest_k8sdr.faults.machines.factory import make_machine
from pytest_k8sdr.faults.machines.inventory import Inventory
from pytest_k8sdr.guards import health_problems
from pytest_k8sdr.journal import JournalRecord
from pytest_k8sdr.twin import Twin
from pytest_k8sdr.undo import REGISTRY, UndoStack

log = logging.getLogger(__name__)

#: The plan's JSON, in the report directory.
PLAN_FILE = "k8sdr-plan.json"
#: The key of the health check's findings in the terminal plan (and from xdist workers).
HEALTH = "(cluster health)"
_READS = frozenset({"get", "watch", "list"})
#: What the node kinds do on the target's API, by journal kind.
_API_CALLS = {
    "cordon": "PATCH /api/v1/nodes/{node} (spec.unschedulable: true)",
    "uncordon": "PATCH /api/v1/nodes/{node} (spec.unschedulable: false)",
    "taint": "PATCH /api/v1/nodes/{node} (spec.taints: add)",
    "out-of-service": "PATCH /api/v1/nodes/{node} (spec.taints: add out-of-service)",
    "untaint": "PATCH /api/v1/nodes/{node} (spec.taints: remove)",
    "isolate": "DELETE /api/v1/nodes/{node}",
}


@dataclass
class PlannedDisruption:
    """One disruption as it would be made on the target."""

    kind: str
    what: str  # "kill the ssh machine of node staging-worker-1"
    node: str | None = None
    driver: str | None = None
    command: str | None = None  # the exact command, or the API call
    undo: str | None = None  # how it would be undone
    lb_entry: str | None = None
    setup: bool = False  # not a disruption: a write the run makes (its namespace)

    def to_json(self) -> dict[str, Any]:
        """As `k8sdr-plan.json` holds it (unset fields left out)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v not in (None, False)}


def disruption_lines(disruption: Mapping[str, Any]) -> list[str]:
    """One planned disruption (its JSON) as the terminal plan prints it."""
    out = [f"would {disruption['what']}"]
    if disruption.get("command"):
        out.append(f"    run: {disruption['command']}")
    if disruption.get("lb_entry"):
        out.append(f"    LB entry: {disruption['lb_entry']}")
    if disruption.get("undo"):
        out.append(f"    undone by: {disruption['undo']}")
    return out


def plan_lines(plan: Mapping[str, Any]) -> list[str]:
    """One test's plan (its JSON: it may come from an xdist worker) as the terminal prints it."""
    out: list[str] = []
    for disruption in plan.get("disruptions") or []:
        out += disruption_lines(disruption)
    if not plan.get("disruptions"):
        out.append("no disruption")
    writes = plan.get("api_writes") or {}
    if writes:
        out.append("API writes: " + ", ".join(f"{verb} {n}" for verb, n in writes.items()))
    for phase in plan.get("phases") or []:
        slo = f" / SLO {phase['slo_seconds']:g}s" if phase.get("slo_seconds") else ""
        seconds = phase.get("predicted_seconds")
        took = f"{seconds:.1f}s" if seconds is not None else "?"
        out.append(f"phase {phase['phase']}: predicted {took}{slo} ({phase['verdict']})")
    out.append(f"rehearsal on the twin: {plan.get('outcome')}")
    out += [f"would block or fail: {b}" for b in plan.get("blockers") or []]
    return out


@dataclass
class ExperimentPlan:
    """What one test would do on the target, and what its rehearsal on the twin showed."""

    nodeid: str
    disruptions: list[PlannedDisruption] = field(default_factory=list)
    writes: dict[str, int] = field(default_factory=dict)
    outcome: str = "not run"
    phases: list[dict[str, Any]] = field(default_factory=list)
    blockers: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """As `k8sdr-plan.json` holds it."""
        return {
            "test": self.nodeid,
            "outcome": self.outcome,
            "disruptions": [d.to_json() for d in self.disruptions],
            "api_writes": dict(sorted(self.writes.items())),
            "phases": self.phases,
            "blockers": self.blockers,
        }


def predicted_phases(phases: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The twin run's phases (`Runbook.summary()` records) as predictions."""
    return [
        {
            "phase": p["phase"],
            "predicted_seconds": p.get("seconds"),
            "slo_seconds": p.get("slo_seconds"),
            "verdict": p.get("verdict"),
        }
        for p in phases
    ]


def blockers(
    failure: str | None,
    phases: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
) -> list[str]:
    """What would block or fail on the target, from the rehearsal's failure, phases and events.

    Pods the scheduler could not place (anti-affinity, a local volume pinning them, taints)
    show as FailedScheduling events in the test's namespace; a drain a PodDisruptionBudget
    blocks, a StatefulSet stuck until isolation and any failed check show as the failure.
    """
    found: list[str] = []
    if failure:
        if "PodDisruptionBudget blocked evictions" in failure:
            found.append(f"a PodDisruptionBudget blocks the drain: {failure}")
        else:
            found.append(failure)
    for phase in phases:
        if phase.get("verdict") == "slo-exceeded":
            found.append(
                f"phase {phase['phase']} exceeds its SLO: {phase.get('seconds', 0):.1f}s > "
                f"{phase.get('slo_seconds')}s"
            )
    seen: set[str] = set()
    for event in events:
        # The recorder's events lane: label "REASON: Kind name", detail the message.
        label, message = str(event.get("label") or ""), str(event.get("detail") or "")
        reason, _, what = label.partition(": ")
        if event.get("lane") == "events" and reason == "FailedScheduling" and message not in seen:
            seen.add(message)
            found.append(f"pods left Pending ({what}): {message}")
    return found


def _lb_kind(settings: Settings, target: str) -> str:
    if settings.lb == "auto":
        return "managed" if target == "sim" else "none"
    return settings.lb


def twin_lb_settings(settings: Settings, target: str) -> Settings:
    """The settings `make_lb` uses on the twin: a managed nginx if the target has an LB at all.

    The target's own load balancer (its config file, its admin socket) is never touched.
    """
    kind = _lb_kind(settings, target)
    return dataclasses.replace(settings, lb="none" if kind == "none" else "managed")


@dataclass
class Rehearsal:
    """The target (read-only), its twin, and the plan gathered from the twin's run."""

    settings: Settings
    target: Backend
    twin: Twin
    inventory: Inventory
    health: list[str] = field(default_factory=list)
    tests: dict[str, ExperimentPlan] = field(default_factory=dict)
    current: ExperimentPlan | None = None
    _writes_before: dict[str, int] = field(default_factory=dict)
    _writes_final: dict[str, int] | None = None  # counted as the twin stopped

    @classmethod
    def start(
        cls,
        settings: Settings,
        workdir: Path,
        inventory_of: Any,  # Callable[[Backend], Inventory]: the target's machines
        undo: UndoStack,
        *,
        ready_timeout: float = 60.0,
    ) -> Rehearsal:
        """Open the target read-only, read its health, start its twin; the target is only read.

        A simulator launched here (the twin, and a simulated target) is journaled on `undo`
        (the session's) before it starts, as the session's own simulator is.
        """
        target = open_backend(settings, workdir / "target", read_only=True, undo=undo)
        try:
            inventory = inventory_of(target)
            health = health_problems(target.cluster)
            twin = Twin.start(
                target.cluster,
                (workdir / "twin").absolute(),
                launch=functools.partial(launch_sim, undo=undo, name="the dry run's twin"),
                profile=settings.profile,
                ready_timeout=ready_timeout,
            )
        except BaseException:
            target.close()
            raise
        return cls(settings, target, twin, inventory, health)

    def backend(self) -> Backend:
        """The session's backend: the twin, read-write (its sim machines, its control plane)."""
        return Backend(
            "sim",
            self.twin.cluster,
            self.twin.sim.kubeconfig_path,
            sim=self.twin.sim,
            target=self.target,
        )

    def stop(self) -> None:
        """Stop the twin and close the target's facade.

        The session's cluster stops during its last test's teardown: that test's writes are
        counted here, before the twin is gone.
        """
        self._writes_final = self._writes()
        try:
            self.twin.stop()
        finally:
            self.target.close()

    # -- per test -----------------------------------------------------------------------------

    def begin(self, nodeid: str) -> None:
        """A test starts on the twin: what it journals from now is its plan."""
        self.current = self.tests.setdefault(nodeid, ExperimentPlan(nodeid))
        self._writes_before = self._writes()

    def end(
        self,
        outcome: str,
        failure: str | None,
        phases: Sequence[Mapping[str, Any]],
        events: Sequence[Mapping[str, Any]],
    ) -> ExperimentPlan | None:
        """The test ended: its outcome, writes, predicted phases and blockers go to its plan."""
        plan = self.current
        if plan is None:
            return None
        plan.outcome = outcome
        after = self._writes()
        plan.writes = {
            verb: n - self._writes_before.get(verb, 0)
            for verb, n in after.items()
            if n > self._writes_before.get(verb, 0)
        }
        plan.phases = predicted_phases(phases)
        plan.blockers = blockers(failure, phases, events)
        self.current = None
        return plan

    def _writes(self) -> dict[str, int]:
        from pytest_k8sdr.cluster import USER_AGENT

        if self._writes_final is not None:
            return self._writes_final
        counts: dict[str, int] = {}
        try:
            requests = self.twin.sim.request_counts()
        except Exception as exc:  # the plan must not fail the run
            log.warning("the twin's request counts are not available: %s", exc)
            return counts
        for (agent, verb), n in requests.items():
            if agent == USER_AGENT and verb not in _READS:
                counts[verb] = counts.get(verb, 0) + n
        return counts

    def planned(self, record: JournalRecord) -> None:
        """A disruption is about to be made on the twin: note what it would be on the target.

        Raises ConfigError (the test then fails, as it would on the target) when the target
        has no way to make it: a node missing from the machine inventory, no control-plane
        commands.
        """
        if self.current is None:
            return
        self.current.disruptions.append(self.translate(record))

    def translate(self, record: JournalRecord) -> PlannedDisruption:
        """What `record` (made on the twin) would be on the target."""
        cls = REGISTRY.kind_of(record)
        summary = cls.from_data(record.data).summary()
        data = record.data
        if record.kind == "machine":
            return self._machine(str(data["node"]), str(data["fault"]), str(data["restore"]))
        if record.kind == "zone":
            machines = [
                self._machine(str(m["node"]), str(data["fault"]), str(data["restore"]))
                for m in data.get("machines") or []
            ]
            return PlannedDisruption(
                "zone",
                f"{data['fault']} every machine of zone {data['zone']}: "
                + "; ".join(m.what for m in machines),
                command=" && ".join(m.command or m.what for m in machines),
                undo=" && ".join(m.undo or "" for m in machines),
            )
        if record.kind == "control-plane":
            return self._control_plane()
        if record.kind in ("nginx-drain", "haproxy-drain"):
            return self._lb(record)
        if record.kind in _API_CALLS:
            return PlannedDisruption(
                record.kind,
                summary,
                node=record.node,
                command=_API_CALLS[record.kind].format(node=record.node),
                undo=cls.from_data(data).undoing(),
            )
        return PlannedDisruption(record.kind, summary, node=record.node, setup=not cls.disruptive)

    def _machine(self, node: str, fault: str, restore: str) -> PlannedDisruption:
        spec = self.inventory.spec_for(node)  # ConfigError: the target run would fail so
        machine = make_machine(spec, UndoStack(), sim=self.target.sim)
        return PlannedDisruption(
            "machine",
            f"{fault} the {machine.driver} machine of node {node}",
            node=node,
            driver=machine.driver,
            command=machine.describe(Action(fault)),
            undo=machine.describe(Action(restore)),
        )

    def _control_plane(self) -> PlannedDisruption:
        commands = self.inventory.control_plane
        if self.target.name == "kubeconfig":
            if "stop" not in commands or "start" not in commands:
                raise ConfigError(
                    "control-plane loss on the target needs commands: add "
                    "`control_plane: {stop: CMD, start: CMD}` to the machine inventory"
                )
            return PlannedDisruption(
                "control-plane",
                "stop the control plane (inventory command)",
                driver="command",
                command=str(commands["stop"]),
                undo=str(commands["start"]),
            )
        driver = "sim" if self.target.name == "sim" else "docker"
        return PlannedDisruption(
            "control-plane", f"stop the control plane ({driver})", driver=driver
        )

    def _lb(self, record: JournalRecord) -> PlannedDisruption:
        node = record.node
        facts = self.twin.target.node(node) if node else None
        address = (facts.address if facts else None) or str(record.data.get("address"))
        settings = self.settings
        kind = _lb_kind(settings, self.target.name)
        if kind == "nginx":
            pool = f"nginx upstream {settings.lb_upstream!r} in {settings.lb_config}"
            how = "comment out its server lines, nginx -t, nginx -s reload"
        elif kind == "haproxy":
            pool = f"HAProxy backend {settings.lb_upstream!r} via {settings.lb_socket}"
            how = "set server ... state maint on the admin socket"
        else:
            pool = "the managed nginx in front of the workload"
            how = "comment out its server lines, nginx -s reload"
        return PlannedDisruption(
            record.kind,
            f"drain {address} (node {node}) from {pool}",
            node=node,
            lb_entry=f"{address} in {pool}: {how}",
            undo=f"restore {address} in {pool}",
        )

    # -- the whole plan -----------------------------------------------------------------------

    def header(self) -> dict[str, Any]:
        """What the twin is: the target it stands for, its shape, what was copied."""
        return {
            "target": {
                "backend": self.target.name,
                "context": self.target.context,
                "nodes": [n.name for n in self.twin.target.nodes],
                "timings": self.twin.target.timings.to_json(),
            },
            "twin": {
                "profile": self.twin.sim.profile,
                "objects": self.twin.loaded.to_json(),
                "not_ready": list(self.twin.not_ready),
            },
            "health": list(self.health),
        }


def plan_json(header: Mapping[str, Any], tests: Sequence[Mapping[str, Any]]) -> str:
    """The whole plan as `k8sdr-plan.json` holds it."""
    return json.dumps({**header, "tests": list(tests)}, indent=2, default=str)


def write_plan(
    report_dir: Path, header: Mapping[str, Any], tests: Sequence[Mapping[str, Any]]
) -> Path:
    """Write `k8sdr-plan.json` into the report directory; its path."""
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / PLAN_FILE
    path.write_text(plan_json(header, tests))
    return path
