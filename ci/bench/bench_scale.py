"""The simulator at scale: API server memory, create-to-Running rate, nodeName lists, leases.

    .venv/bin/python ci/bench/bench_scale.py [--nodes 1000] [--pods 30000]
        [--baseline-pods N] [--lists 50] [--profile upstream|fast] [--json PATH]

Starts an API server with every controller disabled and one hollow agent holding `--nodes`
nodes, POSTs `--pods` pods spread over them (spec.nodeName set: the script plays scheduler),
and measures, once every pod is Running:

- the API server's RSS (peak sampled while pods start, and at rest), and per stored pod;
- pods created to Running per second (pods / seconds from the first POST to all Running);
- the latency of `GET /api/v1/pods?fieldSelector=spec.nodeName=NODE` (what a kubelet and
  the plugin's node checks ask), median and p99 over `--lists` random nodes;
- lease renewals: renewals per second against what the nodes must do, and the oldest
  Lease's age (while starting and at rest) against the lease duration.

With `--baseline-pods N` it first runs the same at N pods (e.g. today's 30,000) and prints each
figure of the `--pods` run as a ratio to it, measured in the same run. The issue's targets at
100,000 pods on 1,000 nodes: RSS <= 1.5 GiB, >= 1,000 pods/s, nodeName list < 100 ms, every
lease renewed in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_agents as agents

from pytest_k8sdr.sim.client.kubeconfig import load_kubeconfig
from pytest_k8sdr.sim.client.rest import ApiClient, Gate
from pytest_k8sdr.sim.profiles import get_profile


class PeakRSS:
    """Samples a process's RSS every `period` seconds in a thread; `peak` is the highest seen."""

    def __init__(self, pid: int, period: float = 0.5) -> None:
        self.pid = pid
        self.period = period
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.peak = max(self.peak, agents.rss_mib(self.pid))
            except OSError:
                return

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


async def node_lists(state_dir: Path, nodes: list[str], repeats: int) -> dict[str, float]:
    """Latency of fieldSelector=spec.nodeName= pod lists over `repeats` random nodes (ms)."""
    api = ApiClient(load_kubeconfig(state_dir / "kubeconfig"), Gate(), request_timeout=120)
    seconds: list[float] = []
    counts: list[int] = []
    try:
        for node in random.Random(7).choices(nodes, k=repeats):
            began = time.perf_counter()
            listed = await api.request(
                "GET", "/api/v1/pods", params={"fieldSelector": f"spec.nodeName={node}"}
            )
            seconds.append(time.perf_counter() - began)
            counts.append(len(listed.get("items") or []))
    finally:
        await api.close()
    ordered = sorted(seconds)
    return {
        "node_list_p50_ms": round(statistics.median(ordered) * 1000, 1),
        "node_list_p99_ms": round(
            ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 1
        ),
        "node_list_pods_median": statistics.median(counts),
    }


def run(nodes: int, pods: int, args: argparse.Namespace) -> dict[str, Any]:
    """One cluster of `nodes` hollow nodes and `pods` pods: the figures."""
    if pods % nodes:
        raise SystemExit(f"--pods ({pods}) must be a multiple of --nodes ({nodes})")
    profile = get_profile(args.profile)
    names = [f"hollow-{i}" for i in range(nodes)]
    with tempfile.TemporaryDirectory(prefix=f"bench-scale-{pods}-") as tmp:
        state_dir = Path(tmp)
        server = agents.start_server(state_dir, args.profile)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            idle_rss = agents.rss_mib(server.pid)
            procs.append(agents.start_agent(state_dir, "hollow", 100, args.profile, nodes))
            with PeakRSS(server.pid) as peak:
                timings = asyncio.run(
                    agents.populate(
                        state_dir, names, pods // nodes, "p", args.timeout, args.progress
                    )
                )
            renewals_before = agents.lease_renewals(state_dir, ["hollow"])
            time.sleep(args.window)
            renewals = (agents.lease_renewals(state_dir, ["hollow"]) - renewals_before) / (
                args.window
            )
            rest_rss = agents.rss_mib(server.pid)
            lists = asyncio.run(node_lists(state_dir, names, args.lists))
            oldest = asyncio.run(agents.lease_age(state_dir))
        finally:
            agents.stop(procs)
            agents.stop([server])
    stored = max(rest_rss - idle_rss, 0.0)
    return {
        "nodes": nodes,
        "pods": pods,
        "profile": args.profile,
        "server_rss_idle_mib": round(idle_rss, 1),
        "server_rss_peak_mib": round(peak.peak, 1),
        "server_rss_at_rest_mib": round(rest_rss, 1),
        "server_kib_per_pod": round(stored * 1024 / pods, 2),
        "create_to_running_pods_per_s": timings["start_rate_pods_per_s"],
        "pods_created_s": timings["pods_created_s"],
        "running_after_created_s": timings["running_after_created_s"],
        **lists,
        "lease_renewals_per_s": round(renewals, 1),
        "lease_renewals_per_s_wanted": round(nodes / profile.lease_renew_interval, 1),
        "oldest_lease_age_s_while_starting": timings["oldest_lease_age_s_while_starting"],
        "oldest_lease_age_s_at_rest": oldest,
        "lease_duration_s": profile.node_lease_duration,
        "leases_in_time": max(timings["oldest_lease_age_s_while_starting"], oldest)
        < profile.node_lease_duration,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


RATIOS = (
    "server_rss_peak_mib",
    "server_rss_at_rest_mib",
    "server_kib_per_pod",
    "create_to_running_pods_per_s",
    "node_list_p50_ms",
    "node_list_p99_ms",
)


def main() -> None:
    """Run the baseline (if asked) and the target; print the figures and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=30000, help="pods in all (default 30,000)")
    parser.add_argument("--baseline-pods", type=int, default=None, help="run this count first")
    parser.add_argument("--lists", type=int, default=50, help="nodeName lists to time")
    parser.add_argument("--window", type=float, default=10.0, help="seconds to count renewals")
    parser.add_argument("--profile", default="upstream", help="timing profile (lease duration)")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--progress", type=float, default=15.0)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if args.nodes < 1 or args.pods < args.nodes or args.lists < 1:
        parser.error("need --nodes >= 1, --pods >= --nodes and --lists >= 1")
    figures: dict[str, Any] = {}
    if args.baseline_pods is not None:
        print(f"baseline: {args.nodes} hollow nodes, {args.baseline_pods} pods", flush=True)
        figures["baseline"] = run(args.nodes, args.baseline_pods, args)
        print(f"baseline: {json.dumps(figures['baseline'])}", flush=True)
    print(f"target: {args.nodes} hollow nodes, {args.pods} pods", flush=True)
    figures["target"] = target = run(args.nodes, args.pods, args)
    print(f"target: {json.dumps(target)}", flush=True)
    if "baseline" in figures:
        base = figures["baseline"]
        figures["ratios"] = {k: round(target[k] / base[k], 3) for k in RATIOS if base[k]}
        for key, ratio in figures["ratios"].items():
            print(f"ratio {key}: x{ratio:.2f} ({base[key]} -> {target[key]})")
    print(
        f"{target['pods']} pods on {target['nodes']} nodes: API server RSS "
        f"{target['server_rss_peak_mib']:.0f} MiB peak / {target['server_rss_at_rest_mib']:.0f} "
        f"MiB at rest ({target['server_kib_per_pod']:.1f} KiB per pod); "
        f"{target['create_to_running_pods_per_s']:.0f} pods/s created to Running; "
        f"nodeName list p50/p99 {target['node_list_p50_ms']:.0f}/{target['node_list_p99_ms']:.0f}"
        f" ms; leases in time: {target['leases_in_time']} (oldest "
        f"{max(target['oldest_lease_age_s_while_starting'], target['oldest_lease_age_s_at_rest'])}"
        f" s of {target['lease_duration_s']} s)"
    )
    print(json.dumps(figures, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
