"""Benchmark: from a worker's kill to its replicas Ready elsewhere, beside the theoretical minimum.

    .venv/bin/python ci/bench/bench_kill_ready.py [--trials 6] [--replicas 6] [--json PATH]

On a simulated cluster of three workers (the `fast` profile), a Deployment of `--replicas`
replicas; each trial kills (SIGKILL) the worker running most of them and times, from the kill,
when the watch-driven checks see: the node Unknown with the unreachable NoExecute taint, and
every replica Ready again with none on the dead node.

The theoretical minimum is the issue's: grace period + default unreachable toleration + pod
start delay (4 + 10 + 0.5 = 14.5 s on the fast profile). Beside it the benchmark prints what
upstream's own structure makes of that on average, so the overhead can be attributed:

- the kill lands at a random point of the Lease renewal interval (the node turns Unknown a
  grace period after the *last renewal*, 0..renew earlier than the kill: mean -renew/2) and
  of the node monitor period (the controller notices at its next pass: mean +period/2);
- the NoExecute taint is queued one monitor pass after the pass that wrote Unknown, because
  upstream's processTaintBaseEviction reads the Ready condition the pass *observed* (still
  True) (pkg/controller/nodelifecycle/node_lifecycle_controller.go; upstream-observed.md saw it
  5 s = one default period after Unknown): +period;
- from the taint: the toleration, then the replacement's start delay.

So upstream's expected mean is grace - renew/2 + period/2 + period + toleration + start delay
(15.5 s on the fast profile), and what the simulator itself adds is the "taint -> Ready" row's
overhead: the taint manager, ReplicaSet controller, scheduler, kubelet and watch latencies.
The node is started again (and waited Ready) between trials. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pytest_k8sdr import Cluster, WaitTimeout, assert_node_unreachable, assert_pods_rescheduled
from pytest_k8sdr.sim import SimCluster
from pytest_k8sdr.sim.profiles import FAST
from pytest_k8sdr.workloads import deploy

NAMESPACE = "bench-kill"


def minimums() -> dict[str, float]:
    """The theoretical minimum of each phase under the fast profile, in seconds (the issue's)."""
    grace = FAST.node_monitor_grace_period
    after_taint = FAST.default_unreachable_toleration_seconds + FAST.pod_start_delay
    return {"tainted": grace, "taint_to_ready": after_taint, "replicas_ready": grace + after_taint}


def upstream_expected() -> dict[str, float]:
    """The mean each phase takes from upstream's own structure (see the module's docstring)."""
    taint = (
        FAST.node_monitor_grace_period
        - FAST.lease_renew_interval / 2
        + FAST.node_monitor_period / 2
        + FAST.node_monitor_period
    )
    after_taint = FAST.default_unreachable_toleration_seconds + FAST.pod_start_delay
    return {"tainted": taint, "taint_to_ready": after_taint, "replicas_ready": taint + after_taint}


def trial(sim: SimCluster, cluster: Cluster, replicas: int, index: int) -> dict[str, float]:
    """Kill the busiest worker once; seconds from the kill to each phase."""
    name = f"web{index}"
    web = deploy(cluster, NAMESPACE, name, replicas=replicas, service=None, timeout=120)
    victim = web.busiest_node()
    old = [p.uid for p in web.pods() if p.node == victim]
    killed = time.monotonic()
    sim.kill_node(victim)
    try:
        # Timed on the monotonic clock the kill was timed with, when each watch-driven check
        # returns (within milliseconds of the change: see bench_waits.py).
        assert_node_unreachable(cluster, victim, timeout=60)
        tainted_at = time.monotonic()
        assert_pods_rescheduled(web, away_from=victim, replaced_uids=old, timeout=120)
        ready_at = time.monotonic()
    finally:
        sim.start_node(victim)
        cluster.wait_node_ready(victim, timeout=60)
    return {
        "victim_pods": float(len(old)),
        "tainted": tainted_at - killed,
        "taint_to_ready": ready_at - tainted_at,
        "replicas_ready": ready_at - killed,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the trials; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--replicas", type=int, default=6)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.trials < 1 or args.replicas < 1:
        parser.error("--trials and --replicas must be >= 1")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    mins = minimums()
    print(
        f"cores: {os.cpu_count()}; fast profile: grace {FAST.node_monitor_grace_period:.0f}s, "
        f"renew {FAST.lease_renew_interval:.0f}s, monitor period {FAST.node_monitor_period:.0f}s, "
        f"toleration {FAST.default_unreachable_toleration_seconds}s, "
        f"pod start {FAST.pod_start_delay}s",
        flush=True,
    )
    runs: list[dict[str, float]] = []
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-kill-") as tmp:
        sim = SimCluster.start(Path(tmp), workers=3, profile="fast")
        cluster = Cluster.from_kubeconfig(sim.kubeconfig_path)
        try:
            cluster.call(
                cluster.core.create_namespace,
                {"metadata": {"name": NAMESPACE}},
                _preload_content=False,
            )
            for i in range(args.trials):
                try:
                    runs.append(trial(sim, cluster, args.replicas, i))
                except WaitTimeout as exc:
                    # Reported, not fatal: the other trials still give figures.
                    failures.append(str(exc).splitlines()[0])
                    print(f"  trial {i + 1}: FAILED: {exc}", flush=True)
                    continue
                rounded = {k: round(v, 2) for k, v in runs[-1].items()}
                print(f"  trial {i + 1}: {json.dumps(rounded)}", flush=True)
        finally:
            cluster.close()
            sim.stop()
    figures: dict[str, Any] = {
        "trials": args.trials,
        "replicas": args.replicas,
        "failed_trials": failures,
    }
    if not runs:
        print(f"\nevery trial failed: {failures[0]}")
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2) + "\n")
        return 1
    expected = upstream_expected()
    print(
        f"\nkill -> phase (s), mean of {len(runs)} trial(s) ({len(failures)} failed); minimum: "
        "grace + toleration + start delay; upstream mean: what upstream's structure gives"
    )
    print(
        f"{'phase':26} {'measured':>9} {'minimum':>8} {'overhead':>9} {'ratio':>7} "
        f"{'upstream mean':>14}"
    )
    label = {
        "tainted": "kill -> Unknown + NoExecute",
        "taint_to_ready": "taint -> replicas Ready",
        "replicas_ready": "kill -> replicas Ready",
    }
    for phase in ("tainted", "taint_to_ready", "replicas_ready"):
        measured = statistics.fmean(r[phase] for r in runs)
        figures[phase] = {
            "measured_s": measured,
            "max_s": max(r[phase] for r in runs),
            "minimum_s": mins[phase],
            "overhead_s": measured - mins[phase],
            "ratio": measured / mins[phase],
            "upstream_mean_s": expected[phase],
        }
        f = figures[phase]
        print(
            f"{label[phase]:26} {measured:9.2f} {f['minimum_s']:8.2f} "
            f"{f['overhead_s']:+9.2f} {f['ratio']:6.2f}x {expected[phase]:14.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
