"""Benchmark: from a worker's kill to its replicas Ready elsewhere, beside the theoretical minimum.

    .venv/bin/python ci/bench/bench_kill_ready.py [--trials 3] [--replicas 6] [--json PATH]

On a simulated cluster of three workers (the `fast` profile), a Deployment of `--replicas`
replicas; each trial kills (SIGKILL) the worker running most of them and times, from the kill:

- Ready=Unknown: no sooner than the node monitor grace period after the last Lease renewal,
  which was at most one renewal interval before the kill: minimum grace - renew interval;
- the unreachable NoExecute taint: the same instant (the controller writes both in one pass);
- every replica Ready again, none on the dead node: the taint, then the default unreachable
  toleration (DefaultTolerationSeconds), then a replacement's start delay: minimum
  grace - renew interval + toleration + pod start delay.

The overhead is each measured time minus its minimum: what the controllers, the scheduler, the
kubelets and the watches add. The node is started again (and waited Ready) between trials.
Prints figures and ratios measured/minimum; asserts nothing.
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

from pytest_k8sdr.checks import assert_node_unreachable, assert_pods_rescheduled
from pytest_k8sdr.cluster import Cluster, WaitTimeout
from pytest_k8sdr.sim import SimCluster
from pytest_k8sdr.sim.profiles import FAST
from pytest_k8sdr.workloads import deploy

NAMESPACE = "bench-kill"


def minimums() -> dict[str, float]:
    """The theoretical minimum of each phase under the fast profile, in seconds."""
    unknown = FAST.node_monitor_grace_period - FAST.lease_renew_interval
    return {
        "unknown": unknown,
        "tainted": unknown,
        "replicas_ready": unknown
        + FAST.default_unreachable_toleration_seconds
        + FAST.pod_start_delay,
    }


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
        "replicas_ready": ready_at - killed,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the trials; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
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
    print(
        f"\nkill -> phase (s), mean of {len(runs)} trial(s) ({len(failures)} failed); "
        "minimum under the fast profile"
    )
    print(f"{'phase':26} {'measured':>9} {'minimum':>8} {'overhead':>9} {'ratio':>7}")
    for phase in ("tainted", "replicas_ready"):
        measured = statistics.fmean(r[phase] for r in runs)
        figures[phase] = {
            "measured_s": measured,
            "max_s": max(r[phase] for r in runs),
            "minimum_s": mins[phase],
            "overhead_s": measured - mins[phase],
            "ratio": measured / mins[phase],
        }
        f = figures[phase]
        label = {
            "tainted": "Unknown + NoExecute taint",
            "replicas_ready": "replicas Ready elsewhere",
        }
        print(
            f"{label[phase]:26} {measured:9.2f} {f['minimum_s']:8.2f} "
            f"{f['overhead_s']:+9.2f} {f['ratio']:6.2f}x"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
