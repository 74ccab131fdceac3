"""Crash drill: the whole runbook, SIGKILLed at a random point, N times; `k8sdr recover` each time.

    .venv/bin/python ci/bench/bench_crash_drill.py [--runs 20] [--seed S] [--window S] [--json P]

A simulated cluster (3 workers, fast profile) and a real nginx in front of its workers stand for
a staging cluster and its load balancer, for the whole drill. Each run is
`pytest experiments/test_runbook.py` against them, as a game day runs against staging (the
kubeconfig backend, that nginx as `--k8sdr-lb=nginx`, the sim machines through an inventory,
the game-day lock on). It is SIGKILLed `uniform(0.5, window)` seconds after it starts (seeded:
the seed is printed; `window` is by default how long a first, unkilled run takes here, so the
kills land anywhere from startup to teardown; a run that ends first is not killed), then
`k8sdr recover --journal` runs without `--force`. Afterwards the cluster is compared with its
starting state: every node's labels, annotations, taints set by hand and schedulability; every
node Ready with no journal annotation; the nginx configuration byte for byte; no game-day lock;
no test namespace; exactly one simulator process per node and one API server, and no process
left by the run. A run is recovered when nothing differs. Prints "recovered R/N" with each run's
kill point and what was open when it died. Not a timed test: the figures are the count and the
kill points.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pytest_k8sdr.cluster import MANAGED_BY, Cluster, NodeView
from pytest_k8sdr.config import load_kubeconfig
from pytest_k8sdr.errors import WaitTimeout
from pytest_k8sdr.faults.node import NodeSnapshot
from pytest_k8sdr.journal import ANNOTATION, read_journal
from pytest_k8sdr.lb.managed import ManagedNginx
from pytest_k8sdr.lock import DEFAULT_NAME
from pytest_k8sdr.results import Satisfied
from pytest_k8sdr.sim import SimCluster
from pytest_k8sdr.workloads import deploy

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "experiments" / "test_runbook.py"
LB_NAMESPACE = "k8sdr-drill-lb"  # the workload behind the nginx: not a test namespace
UPSTREAM = "web"
# Hand-set state every worker carries, which a re-registered node loses and relabel restores.
HAND_LABEL = ("example.com/team", "sre")
HAND_ANNOTATION = ("example.com/owner", "platform")


@dataclass
class Run:
    """One run of the drill: when it was killed, what was open, and what differed afterwards."""

    index: int
    kill_at: float
    killed: bool
    open_at_kill: list[str] = field(default_factory=list)
    seconds: float = 0.0
    exit_code: int | None = None
    recover_code: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def recovered(self) -> bool:
        """Nothing differs from the starting state."""
        return not self.problems

    def line(self) -> str:
        """One line for the report."""
        if self.index < 0:
            verdict = "as it started" if self.recovered else "; ".join(self.problems)
            return f"a whole run, not killed, took {self.seconds:.1f}s -> {verdict}"
        when = (
            f"killed at {self.kill_at:5.2f}s"
            if self.killed
            else f"ran to its end in {self.seconds:.1f}s (before {self.kill_at:.2f}s)"
        )
        opened = ", ".join(self.open_at_kill) or "nothing"
        verdict = "recovered" if self.recovered else "NOT recovered: " + "; ".join(self.problems)
        return f"run {self.index + 1:2}: {when}, open: {opened} -> {verdict}"


@dataclass
class Drill:
    """What the drill found: how many runs were recovered, of how many, with which seed."""

    seed: int
    window: float
    runs: list[Run] = field(default_factory=list)
    baseline: Run | None = None

    @property
    def recovered(self) -> int:
        """Runs after which the cluster was as it started."""
        return sum(1 for r in self.runs if r.recovered)

    def summary(self) -> str:
        """``recovered R/N (seed S)`` and the kill points."""
        points = ", ".join(f"{r.kill_at:.2f}" if r.killed else "end" for r in self.runs)
        return (
            f"recovered {self.recovered}/{len(self.runs)} (seed {self.seed}, kill points in s "
            f"within [0.5, {self.window:.1f}]: {points})"
        )


# -- the starting state and what differs from it ----------------------------------------------


def _node_state(node: NodeView) -> dict[str, Any]:
    snap = NodeSnapshot.of(node)
    return {
        "labels": dict(snap.labels),
        "annotations": dict(snap.annotations),
        "taints": sorted(str(t) for t in snap.taints),
        "unschedulable": node.unschedulable,
        "ready": node.ready,
        "journal annotation": node.annotations.get(ANNOTATION),
    }


def _processes(text: str) -> list[str]:
    """Live processes whose command line contains `text`, as their command lines."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            raw = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        cmdline = raw.replace(b"\0", b" ").decode(errors="replace").strip()
        if text in cmdline and state != "Z":
            found.append(cmdline)
    return found


def _simulator_processes(state_dir: Path) -> list[str]:
    """The cluster's processes as roles: ``apiserver``, ``agent NODE`` (sorted)."""
    roles = []
    for cmdline in _processes(str(state_dir)):
        words = cmdline.split()
        if "pytest_k8sdr.sim.server" in cmdline:
            roles.append("apiserver")
        elif "--node-name" in words:
            roles.append(f"agent {words[words.index('--node-name') + 1]}")
        else:
            roles.append(cmdline)
    return sorted(roles)


def cluster_state(api: Cluster, nginx: ManagedNginx, state_dir: Path) -> dict[str, Any]:
    """What must be as it was after a recovery."""
    leases = api.list_raw("leases")["items"]
    return {
        "nodes": {n.name: _node_state(n) for n in api.nodes()},
        "nginx config": nginx.config.read_bytes(),
        "game-day lock": [
            f"{x['metadata']['namespace']}/{x['metadata']['name']}"
            for x in leases
            if x["metadata"]["name"] == DEFAULT_NAME
        ],
        "test namespaces": sorted(
            ns["metadata"]["name"]
            for ns in api.list_raw("namespaces", label_selector="=".join(MANAGED_BY))["items"]
        ),
        "simulator processes": _simulator_processes(state_dir),
    }


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What differs, one line each (the nginx config by size and first differing line)."""
    problems = []
    for key, was in before.items():
        now = after[key]
        if now == was:
            continue
        if key == "nginx config":
            old, new = was.decode().splitlines(), now.decode().splitlines()
            diff = next((f"{a!r} now {b!r}" for a, b in zip(old, new, strict=False) if a != b), "")
            problems.append(f"nginx config differs: {diff or f'{len(old)} lines now {len(new)}'}")
        elif key == "nodes":
            for name in sorted(set(was) | set(now)):
                if was.get(name) != now.get(name):
                    problems.append(f"node {name}: was {was.get(name)}, now {now.get(name)}")
        else:
            problems.append(f"{key}: was {was}, now {now}")
    return problems


# -- the drill ---------------------------------------------------------------------------------


def _wait_for_open(
    proc: subprocess.Popen[str], journal: Path, kind: str, timeout: float | None
) -> int:
    """The run's exit code; TimeoutExpired once `journal` holds an open `kind` (or at timeout)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        code = proc.poll()
        if code is not None:
            return code
        if kind in _open_entries(journal) or (deadline and time.monotonic() >= deadline):
            raise subprocess.TimeoutExpired(proc.args, timeout or 0.0)
        time.sleep(0.02)


def _open_entries(journal: Path) -> list[str]:
    try:
        return [e.record.kind for e in read_journal(journal)]
    except Exception:  # no journal yet (killed before), or a line cut short by the kill
        return []


def _agents_started(state_dir: Path) -> dict[str, float]:
    """When each node's agent process started (wall clock, s), read from /proc."""
    boot = next(
        float(line.split()[1])
        for line in Path("/proc/stat").read_text().splitlines()
        if line.startswith("btime ")
    )
    tick = os.sysconf("SC_CLK_TCK")
    started = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            words = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if str(state_dir) in " ".join(words) and "--node-name" in words and fields[0] != "Z":
            started[words[words.index("--node-name") + 1]] = boot + int(fields[19]) / tick
    return started


def _ready_by_its_kubelet(raw: dict[str, Any], started: dict[str, float]) -> bool:
    """Ready, as posted by the node's current agent (a restarted kubelet posts NotReady first)."""
    name = raw["metadata"]["name"]
    for condition in (raw.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            beat = condition.get("lastHeartbeatTime")
            if name not in started or not beat:
                return False
            posted = datetime.fromisoformat(beat.replace("Z", "+00:00")).timestamp()
            return posted >= int(started[name])  # heartbeats have second precision
    return False


def _settle(api: Cluster, state_dir: Path, nodes: list[str], timeout: float = 90.0) -> list[str]:
    """Wait until every node is Ready, no test namespace is left and the LB workload is whole.

    A node counts as Ready once its current agent says so: a node whose machine was just
    restarted still shows the Ready its previous agent posted, then NotReady for a moment.
    """
    problems = []
    started = _agents_started(state_dir)

    def waited(what: str, check: Callable[[], Any]) -> None:
        try:
            check()
        except WaitTimeout as exc:
            problems.append(f"{what}: {str(exc).splitlines()[0]}")

    waited(
        "nodes Ready",
        lambda: api.wait(
            "nodes",
            lambda s: (
                Satisfied(None)
                if all(_ready_by_its_kubelet(o, started) for o in s.values())
                and set(s.objects) >= set(nodes)
                else None
            ),
            timeout=timeout,
            description="every node Ready, as its current agent posts it",
        ),
    )
    waited(
        "test namespaces gone",
        lambda: api.wait(
            "namespaces",
            lambda s: None if s.objects else Satisfied(None),
            timeout=timeout,
            description="every test namespace to be deleted",
            label_selector="=".join(MANAGED_BY),
        ),
    )
    waited(
        "LB workload Ready",
        lambda: api.wait(
            "deployments",
            lambda s: (
                Satisfied(None)
                if all(
                    (o.get("status") or {}).get("readyReplicas") == o["spec"]["replicas"]
                    for o in s.values()
                )
                else None
            ),
            timeout=timeout,
            description="the LB workload to be Ready",
            namespace=LB_NAMESPACE,
        ),
    )
    return problems


@dataclass
class _Stage:
    """The drill's cluster, load balancer and what every run is given."""

    base: Path
    sim: SimCluster
    api: Cluster
    nginx: ManagedNginx
    nodes: list[str]
    options: list[str]
    before: dict[str, Any]

    def run(self, index: int, kill_at: float | None, *, kill_on: str | None = None) -> Run:
        """One run of the runbook, SIGKILLed after `kill_at` s (None: let it end), recovered.

        With `kill_on` (a disruption kind), it is SIGKILLed the moment its journal holds an
        open disruption of that kind instead (at `kill_at` at the latest): a kill with work
        open, whatever the machine's speed.
        """
        run = Run(index, kill_at or 0.0, killed=False)
        runs_dir = self.base / f"run-{index}"
        journal = runs_dir / "journal.jsonl"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                str(RUNBOOK),
                f"--basetemp={runs_dir / 'tmp'}",
                f"--k8sdr-journal={journal}",
                *self.options,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("K8SDR_")},
        )
        started = time.monotonic()
        try:
            if kill_on is None:
                run.exit_code = proc.wait(timeout=kill_at)
            else:
                run.exit_code = _wait_for_open(proc, journal, kill_on, kill_at)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            run.killed = True
        run.seconds = time.monotonic() - started
        if run.killed and kill_on is not None:
            run.kill_at = run.seconds
        out, _ = proc.communicate(timeout=60)
        run.open_at_kill = _open_entries(journal)
        if not run.killed and run.exit_code != 0:
            run.problems.append(f"the run failed by itself (exit {run.exit_code}): {out}")
        if journal.exists():
            done = subprocess.run(
                [sys.executable, "-m", "pytest_k8sdr.cli", "recover", "--journal", str(journal)],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            run.recover_code = done.returncode
            if done.returncode != 0:
                run.problems.append(f"recover exited {done.returncode}: {done.stdout}{done.stderr}")
            left = _open_entries(journal)
            if left:
                run.problems.append(f"still open in the journal: {left}")
        run.problems += _settle(self.api, self.sim.state_dir, self.nodes)
        run.problems += differences(
            self.before, cluster_state(self.api, self.nginx, self.sim.state_dir)
        )
        strays = _processes(str(runs_dir))
        if strays:
            run.problems.append(f"processes left by the run: {strays}")
        return run


def _stage(base: Path, sim: SimCluster, api: Cluster) -> _Stage:
    nodes = sim.node_names()
    workers = [n for n in nodes if "control-plane" not in n]
    hand_set = {"labels": dict([HAND_LABEL]), "annotations": dict([HAND_ANNOTATION])}
    for worker in workers:
        api.call(api.core.patch_node, worker, {"metadata": hand_set})
    api.call(
        api.core.create_namespace, {"metadata": {"name": LB_NAMESPACE}}, _preload_content=False
    )
    backend = deploy(api, LB_NAMESPACE, UPSTREAM, replicas=3)
    servers = {w: f"{sim.node_address(w)}:{backend.node_port}" for w in workers}
    nginx = ManagedNginx(base / "nginx", servers, upstream=UPSTREAM).start()
    _, context = load_kubeconfig([sim.kubeconfig_path])
    inventory = base / "machines.yaml"
    inventory.write_text(
        json.dumps({"defaults": {"driver": "sim", "state_dir": str(sim.state_dir)}})
    )
    options = [
        "--k8sdr-backend=kubeconfig",
        f"--k8sdr-kubeconfig={sim.kubeconfig_path}",
        f"--k8sdr-allowed-contexts={context}",
        f"--k8sdr-machines={inventory}",
        "--k8sdr-lb=nginx",
        f"--k8sdr-lb-config={nginx.config}",
        f"--k8sdr-lb-upstream={UPSTREAM}",
        f"--k8sdr-lb-url={nginx.url}",
    ]
    before = cluster_state(api, nginx, sim.state_dir)
    return _Stage(base, sim, api, nginx, nodes, options, before)


def drill(
    runs: int,
    seed: int,
    *,
    window: float | None = None,
    workdir: Path | None = None,
    echo: Callable[[str], None] = print,
    kill_on_first: str | None = None,
) -> Drill:
    """Run the drill; every run's outcome is in the result (nothing raised for a failed run).

    Without a `window`, a first run that is not killed measures how long a whole run takes
    here, and kill points are drawn up to that; it must leave the cluster as it found it too.
    With `kill_on_first` (a disruption kind), the first run is killed the moment that kind of
    disruption is open, not at a drawn time (kill points drawn from the wall time of a run on
    a loaded machine may all miss the disruptions).
    """
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="k8sdr-drill-", dir=workdir) as tmp:
        base = Path(tmp)
        sim = SimCluster.start(base / "sim", workers=3, profile="fast")
        api = Cluster.from_kubeconfig(sim.kubeconfig_path)
        stage: _Stage | None = None
        try:
            stage = _stage(base, sim, api)
            result = Drill(seed, window or 0.0)
            if window is None:
                baseline = stage.run(-1, None)
                echo(f"baseline: {baseline.line()}")
                result.baseline = baseline
                result.window = max(1.0, baseline.seconds)
            for index in range(runs):
                kill_at = rng.uniform(0.5, result.window)
                if index == 0 and kill_on_first is not None:
                    run = stage.run(index, 300.0, kill_on=kill_on_first)
                else:
                    run = stage.run(index, kill_at)
                result.runs.append(run)
                echo(run.line())
        finally:
            if stage is not None:
                stage.nginx.stop()
            api.close()
            SimCluster.attach(sim.state_dir).stop()  # agents restarted by recover included
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the drill and print "recovered R/N"; exit 1 when a run was not recovered."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None, help="default: from the clock")
    parser.add_argument(
        "--window",
        type=float,
        default=None,
        help="kill points are drawn in [0.5, WINDOW] s (default: the time a first, unkilled "
        "run takes)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.runs < 1 or (args.window is not None and args.window <= 0.5):
        parser.error("--runs must be >= 1 and --window > 0.5")
    seed = args.seed if args.seed is not None else time.time_ns() % 1_000_000
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"crash drill: {args.runs} runs of {RUNBOOK.relative_to(ROOT)}, seed {seed}", flush=True)
    result = drill(args.runs, seed, window=args.window, echo=lambda line: print(line, flush=True))
    print(result.summary())
    if args.json:
        figures = {
            "runs": len(result.runs),
            "recovered": result.recovered,
            "seed": result.seed,
            "window_s": result.window,
            "baseline": asdict(result.baseline) if result.baseline else None,
            "details": [asdict(r) | {"recovered": r.recovered} for r in result.runs],
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    whole = result.baseline is None or result.baseline.recovered
    return 0 if result.recovered == len(result.runs) and whole else 1


if __name__ == "__main__":
    raise SystemExit(main())
