"""Benchmark: pods the simulated scheduler places per second, with and without constraints.

    .venv/bin/python ci/bench/bench_scheduler.py [--nodes 1000] [--pods 1000] [--group 100]
        [--zones 10] [--json PATH]

In one process (no HTTP, as bench_controllers.py): a Store holding `--nodes` Ready nodes
(`--zones` zones, room for every pod) and only the scheduler controller running. Each phase
creates `--pods` pending pods while the scheduler is stopped, starts it, and times until every
pod is bound (a watch on the store counts the bindings):

- plain: no affinity, no spread: NodeResourcesFit, TaintToleration, the scoring plugins;
- constrained: the pods in workloads of `--group` replicas, each with required pod
  anti-affinity on `kubernetes.io/hostname` (one replica per node) and a DoNotSchedule
  topology spread over `topology.kubernetes.io/zone` (maxSkew 1), the chart-like shape the
  experiments use; InterPodAffinity and PodTopologySpread then count the group's pods over the
  nodes in every cycle.

Prints pods/s for both, the ratio constrained/plain measured in the same run, and whether the
placements hold (at most one replica of a workload per node, zone skew at most 1). Asserts
nothing. The nodes are objects in the store, not agents: a hollow node's agent only starts the
pods once bound, which is not the scheduler's work (bench_scale.py measures that).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pytest_k8sdr.sim import Store
from pytest_k8sdr.sim.controllers.controller import Context
from pytest_k8sdr.sim.controllers.scheduler import Scheduler
from pytest_k8sdr.sim.profiles import FAST

JSON = dict[str, Any]
HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"


def add_nodes(store: Store, nodes: int, zones: int) -> dict[str, str]:
    """Ready nodes with room for every pod; returns each node's zone."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    zone_of = {}
    for i in range(nodes):
        name, zone = f"n{i:04d}", f"z{i % zones}"
        zone_of[name] = zone
        node = store.create(
            "nodes", None, {"metadata": {"name": name, "labels": {HOSTNAME: name, ZONE: zone}}}
        )
        node["status"] = {
            "conditions": [
                {
                    "type": t,
                    "status": "True" if t == "Ready" else "False",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
                for t in ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")
            ],
            "capacity": {"cpu": "64", "memory": "256Gi", "pods": "110"},
            "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "110"},
        }
        store.update("nodes", None, name, node, subresource="status")
    return zone_of


def pod_body(app: str, constrained: bool) -> JSON:
    """A pending pod of workload `app`, with the chart-like constraints or none."""
    spec: JSON = {
        "containers": [
            {"name": "c", "image": "x", "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}
        ]
    }
    if constrained:
        selector = {"matchLabels": {"app": app}}
        spec["affinity"] = {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": selector, "topologyKey": HOSTNAME}
                ]
            }
        }
        spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": ZONE,
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": selector,
            }
        ]
    return {"metadata": {"generateName": f"{app}-", "labels": {"app": app}}, "spec": spec}


async def run_phase(args: argparse.Namespace, constrained: bool) -> JSON:
    """One fresh store: nodes, pending pods, then the scheduler; the time to bind them all."""
    gc.collect()
    store = Store()
    zone_of = add_nodes(store, args.nodes, args.zones)
    for i in range(args.pods):
        store.create("pods", "default", pod_body(f"app{i // args.group}", constrained))
    placed: dict[str, tuple[str, str]] = {}
    done = asyncio.Event()

    def on_pod(event: Any) -> None:
        pod = event.object
        node = (pod.get("spec") or {}).get("nodeName")
        name = pod["metadata"]["name"]
        if node and name not in placed:
            placed[name] = (pod["metadata"]["labels"]["app"], node)
            if len(placed) >= args.pods:
                done.set()

    store.subscribe("pods", on_pod)
    scheduler = Scheduler(Context(store, FAST.replace(name="bench")))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    tasks = scheduler.start()
    try:
        await asyncio.wait_for(done.wait(), args.timeout)
        timed_out = False
    except TimeoutError:
        timed_out = True
    seconds = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    per_node: collections.Counter[tuple[str, str]] = collections.Counter(placed.values())
    zones: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for app, node in placed.values():
        zones[app][zone_of[node]] += 1
    skew = max(
        (max(c.values()) - min(c.get(f"z{z}", 0) for z in range(args.zones)))
        for c in zones.values()
    )
    return {
        "pods": args.pods,
        "placed": len(placed),
        "timed_out": timed_out,
        "seconds": seconds,
        "cpu_s": cpu,
        "pods_per_s": len(placed) / seconds if seconds else 0.0,
        "max_replicas_per_node": max(per_node.values()),
        "max_zone_skew": skew,
    }


def main() -> None:
    """Parse arguments, run both phases, print the figures and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--group", type=int, default=100, help="replicas per workload")
    parser.add_argument("--zones", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per phase")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    if args.group > args.nodes:
        parser.error("--group must be <= --nodes: required anti-affinity puts one per node")
    plain = asyncio.run(run_phase(args, constrained=False))
    constrained = asyncio.run(run_phase(args, constrained=True))
    for label, r in (("plain", plain), ("constrained", constrained)):
        print(
            f"{label:11s} {r['placed']}/{r['pods']} pods on {args.nodes} nodes in "
            f"{r['seconds']:.1f} s: {r['pods_per_s']:.1f} pods/s (CPU {r['cpu_s']:.1f} s); "
            f"at most {r['max_replicas_per_node']} replica(s) of a workload per node, zone skew "
            f"<= {r['max_zone_skew']}" + ("; TIMED OUT" if r["timed_out"] else ""),
            flush=True,
        )
    ratio = constrained["pods_per_s"] / plain["pods_per_s"] if plain["pods_per_s"] else 0.0
    print(
        f"ratio: constrained (anti-affinity + zone spread, {args.group} replicas a workload) "
        f"places pods at {ratio:.2f}x the plain rate at {args.nodes} nodes"
    )
    if args.json:
        figures = {"nodes": args.nodes, "plain": plain, "constrained": constrained, "ratio": ratio}
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
