"""Benchmark: the plugin's checks over 1,000 simulated nodes and 30,000 pods, and its memory.

    .venv/bin/python ci/bench/bench_checks_scale.py [--nodes 1000] [--pods 30000] [--json PATH]

Starts a simulated cluster with `--nodes` hollow nodes, which register their Nodes and Leases as
kubelets do, then stops their agent: on this machine the hollow kubelets start about two pods a
second, hours for 30,000. The node lifecycle, taint eviction and pod GC controllers are off, so
the silent nodes stay Ready and nothing moves the pods. This script then creates `--pods` pods
bound to those nodes and writes their status (Running, Ready) as their kubelet would, from a
child process so its buffers do not count as the plugin's memory. Two extra Node objects give
the node checks something to find: one Unknown with the unreachable taints (written here, as
the lifecycle controller would), one deleted.

Then, in this process (which imports only the plugin), it times each check where its condition
already holds, so the figure is the check's own cost at that scale:

- `assert_pods_rescheduled` over a workload of every pod (the worst case: one list of all pods)
  and over a 30-pod workload in the same cluster (the usual case), beside the bare facade list
  of the same pods (the floor: what reading them costs);
- the node checks: `assert_node_unreachable`, `assert_node_isolated`, `assert_node_rejoined`,
  beside a bare `Cluster.nodes()` of every node;
- memory: the peak RSS of this process while each check ran (VmHWM, reset before each row; the
  bare list, which holds every pod at once, runs last), its RSS before and after, and the
  tracemalloc peak of the largest check (run again under tracemalloc, so untimed).

Prints figures and ratios to the baselines measured in the same run; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_k8sdr import (
    Cluster,
    Workload,
    assert_node_isolated,
    assert_node_rejoined,
    assert_node_unreachable,
    assert_pods_rescheduled,
)
from pytest_k8sdr.sim import SimCluster

NAMESPACE = "bench"
SMALL = 30
GHOST_UNREACHABLE = "k8sdr-ghost-unreachable"
GHOST_DELETED = "k8sdr-ghost-deleted"
BUDGET_SECONDS = 2.0
# Controllers that would act on nodes whose kubelet is gone, or on their pods.
SILENT = ("nodelifecycle", "taint-eviction-controller", "podgc", "scheduler")
BUDGET_MIB = 200.0


def rss_mib(field: str = "VmRSS") -> float:
    """Resident set size of this process (VmHWM: its peak so far), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def reset_peak_rss() -> None:
    """Reset this process's VmHWM to its current RSS (Linux: /proc/self/clear_refs, 5)."""
    Path("/proc/self/clear_refs").write_text("5")


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    """Wall seconds of `repeat` calls of `fn`."""
    out = []
    for _ in range(repeat):
        gc.collect()
        began = time.perf_counter()
        fn()
        out.append(time.perf_counter() - began)
    return out


def gc_paused(fn: Callable[[], object]) -> object:
    """Call `fn` with the cyclic garbage collector disabled."""
    gc.disable()
    try:
        return fn()
    finally:
        gc.enable()


# ----------------------------------------------------------------------------- populate


def pod_body(name: str, node: str, app: str) -> dict[str, Any]:
    """A pod bound to `node` (no scheduler involved)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": app}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "web", "image": "sim", "ports": [{"containerPort": 8080}]}],
        },
    }


def running_status(index: int) -> dict[str, Any]:
    """What a kubelet writes once the pod's containers run and pass their readiness probe."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    ready = {"status": "True", "lastTransitionTime": now}
    return {
        "status": {
            "phase": "Running",
            "podIP": f"127.{32 + index // 65536}.{index // 256 % 256}.{index % 256}",
            "startTime": now,
            "conditions": [
                {"type": t, **ready} for t in ("PodScheduled", "Initialized", "ContainersReady")
            ]
            + [{"type": "Ready", **ready}],
        }
    }


async def make_unreachable(api: Any, name: str) -> None:
    """Ready=Unknown and the unreachable taints, as the node lifecycle controller writes them."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    await api.request(
        "PATCH",
        f"/api/v1/nodes/{name}/status",
        body={
            "status": {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "Unknown",
                        "reason": "NodeStatusUnknown",
                        "lastTransitionTime": now,
                        "lastHeartbeatTime": now,
                    }
                ]
            }
        },
        content_type="application/merge-patch+json",
    )
    taints = [
        {"key": "node.kubernetes.io/unreachable", "effect": e, "timeAdded": now}
        for e in ("NoSchedule", "NoExecute")
    ]
    await api.request(
        "PATCH",
        f"/api/v1/nodes/{name}",
        body={"spec": {"taints": taints}},
        content_type="application/merge-patch+json",
    )


def ghost_body(name: str) -> dict[str, Any]:
    """A Node object that no kubelet backs: the lifecycle controller will find it silent."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
            "addresses": [{"type": "InternalIP", "address": "127.1.250.250"}],
        },
    }


async def populate(kubeconfig: str, nodes: list[str], pods: int, timeout: float) -> None:
    """Create the namespace, the ghosts and the pods; return once every pod runs Ready."""
    from pytest_k8sdr.sim.client.kubeconfig import load_kubeconfig
    from pytest_k8sdr.sim.client.rest import ApiClient, Gate

    api = ApiClient(load_kubeconfig(kubeconfig), Gate(), request_timeout=300)
    began = time.monotonic()
    try:
        await api.request("POST", "/api/v1/namespaces", body={"metadata": {"name": NAMESPACE}})
        for ghost in (GHOST_UNREACHABLE, GHOST_DELETED):
            await api.request("POST", "/api/v1/nodes", body=ghost_body(ghost))
        await api.request("DELETE", f"/api/v1/nodes/{GHOST_DELETED}")
        await make_unreachable(api, GHOST_UNREACHABLE)
        sem = asyncio.Semaphore(16)

        async def create(body: dict[str, Any]) -> None:
            async with sem:
                path = f"/api/v1/namespaces/{NAMESPACE}/pods"
                created = await api.request("POST", path, body=body)
                index = int(created["metadata"]["name"].rsplit("-", 1)[1])
                await api.request(
                    "PATCH",
                    f"{path}/{created['metadata']['name']}/status",
                    body=running_status(index),
                    content_type="application/merge-patch+json",
                )

        bodies = [pod_body(f"big-{i}", nodes[i % len(nodes)], "big") for i in range(pods - SMALL)]
        bodies += [pod_body(f"small-{i}", nodes[i % len(nodes)], "small") for i in range(SMALL)]
        await asyncio.gather(*(create(b) for b in bodies))
        print(f"  created {len(bodies)} pods in {time.monotonic() - began:.0f}s", flush=True)
        while True:
            listed = await api.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods")
            ready = sum(1 for p in listed.get("items") or [] if _pod_ready(p))
            if ready >= len(bodies):
                break
            if time.monotonic() - began > timeout:
                raise SystemExit(f"only {ready}/{len(bodies)} pods Ready after {timeout:.0f}s")
            await asyncio.sleep(5)
        print(f"  all pods Ready after {time.monotonic() - began:.0f}s", flush=True)
    finally:
        await api.close()


def _pod_ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def stop_hollow_agent(sim: SimCluster) -> None:
    """SIGKILL the hollow agent this run started (by its pid in the launcher's state)."""
    state = json.loads((sim.state_dir / "state.json").read_text())
    for agent in state["agents"].values():
        if agent["hollow"]:
            os.kill(agent["pid"], signal.SIGKILL)


# ----------------------------------------------------------------------------- measure


def measure(cluster: Cluster, pods: int, repeat: int) -> dict[str, Any]:
    """Time every check where it holds; RSS and tracemalloc figures."""
    rss_before = rss_mib()
    big = Workload(cluster, "Deployment", "big", NAMESPACE, pods - SMALL, labels={"app": "big"})
    small = Workload(cluster, "Deployment", "small", NAMESPACE, SMALL, labels={"app": "small"})
    # Nothing runs on the ghost, so the check holds at its first list: its own cost.
    away = GHOST_UNREACHABLE
    hollow0 = "k8sdr-hollow-0"

    def list_big() -> object:
        return cluster.list_raw("pods", NAMESPACE, label_selector="app=big")

    figures: dict[str, Any] = {"repeat": repeat}
    rows: list[tuple[str, Callable[[], object], str | None]] = [
        ("list_all_pods_s", list_big, None),
        (
            "assert_pods_rescheduled_all_s",
            lambda: assert_pods_rescheduled(big, away_from=away, replaced_uids=[], timeout=60),
            "list_all_pods_s",
        ),
        (
            # The same check with the cyclic GC paused: what parsing the list costs without the
            # collector re-scanning millions of fresh JSON containers (see the report).
            "rescheduled_all_gc_paused_s",
            lambda: gc_paused(
                lambda: assert_pods_rescheduled(big, away_from=away, replaced_uids=[], timeout=60)
            ),
            "list_all_pods_s",
        ),
        (
            "assert_pods_rescheduled_30_s",
            lambda: assert_pods_rescheduled(small, away_from=away, replaced_uids=[], timeout=60),
            "list_all_pods_s",
        ),
        ("list_all_nodes_s", cluster.nodes, None),
        (
            "assert_node_unreachable_s",
            lambda: assert_node_unreachable(cluster, away, timeout=60),
            "list_all_nodes_s",
        ),
        (
            "assert_node_isolated_s",
            lambda: assert_node_isolated(cluster, GHOST_DELETED, timeout=10),
            "list_all_nodes_s",
        ),
        (
            "assert_node_rejoined_s",
            lambda: assert_node_rejoined(cluster, hollow0, timeout=60),
            "list_all_nodes_s",
        ),
    ]
    # The bare list holds every pod at once: measured last, so what it leaves allocated cannot
    # count towards a check's peak. Ratios are computed once every row ran.
    rows.append(rows.pop(0))
    for name, fn, _ in rows:
        gc.collect()
        reset_peak_rss()
        try:
            fn()  # warm-up, and a check that fails here is reported, not timed
        except Exception as exc:  # a WaitTimeout or a check's AssertionError
            figures[name] = {"error": str(exc).splitlines()[0]}
            print(f"  {name}: FAILED where it should hold: {figures[name]['error']}")
            continue
        times = timed(fn, repeat)
        figures[name] = {
            "median": statistics.median(times),
            "max": max(times),
            "rss_peak_mib": rss_mib("VmHWM"),
        }
    for name, _, baseline in rows:
        if baseline and "median" in figures[name] and "median" in figures.get(baseline, {}):
            figures[name]["vs_baseline"] = figures[name]["median"] / figures[baseline]["median"]
    figures["rss_peak_checks_mib"] = max(
        (v["rss_peak_mib"] for k, v in figures.items() if k.startswith("assert_") and "max" in v),
        default=0.0,
    )
    figures["rss_before_checks_mib"] = rss_before
    figures["rss_after_checks_mib"] = rss_mib()
    gc.collect()
    tracemalloc.start()
    assert_pods_rescheduled(big, away_from=away, replaced_uids=[], timeout=60)
    figures["tracemalloc_peak_rescheduled_all_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return figures


def report(figures: dict[str, Any], nodes: int, pods: int) -> None:
    """Print the figures as a table."""
    print(f"\nchecks over {nodes} hollow nodes and {pods} pods (median of {figures['repeat']})")
    print(f"{'figure':38} {'median':>9} {'max':>9} {'ratio':>8} {'peak RSS':>9}")
    for name, value in figures.items():
        if isinstance(value, dict) and "error" in value:
            print(f"{name:38} {'FAILED: ' + value['error'][:60]}")
        elif isinstance(value, dict):
            ratio = value.get("vs_baseline")
            ratio_text = f"{ratio:7.2f}x" if ratio is not None else "baseline"
            print(
                f"{name:38} {value['median']:9.3f} {value['max']:9.3f} {ratio_text:>8} "
                f"{value['rss_peak_mib']:5.0f} MiB"
            )
    checks = [k for k in figures if k.startswith("assert_") and "max" in figures[k]]
    worst = max(figures[k]["max"] for k in checks)
    slowest_median = max(figures[k]["median"] for k in checks)
    print(
        f"slowest check: median {slowest_median:.3f}s, max {worst:.3f}s; "
        f"budget {BUDGET_SECONDS:.0f}s"
    )
    peak = figures["rss_peak_checks_mib"]
    print(f"peak RSS while a check ran: {peak:.0f} MiB; budget {BUDGET_MIB:.0f} MB")
    print(
        f"RSS of this process: {figures['rss_before_checks_mib']:.0f} MiB before the checks, "
        f"{figures['rss_after_checks_mib']:.0f} MiB after (the bare list included)"
    )
    print(
        "tracemalloc peak of assert_pods_rescheduled over every pod: "
        f"{figures['tracemalloc_peak_rescheduled_all_mib']:.0f} MiB"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=30000)
    parser.add_argument("--repeat", type=int, default=5, help="timed calls of each check")
    parser.add_argument("--timeout", type=float, default=900.0, help="to populate the cluster")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--populate", nargs=2, metavar=("KUBECONFIG", "NODES"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.nodes < 1 or args.pods <= SMALL:
        parser.error(f"--nodes must be >= 1 and --pods > {SMALL}")
    if args.populate:
        names = [f"k8sdr-hollow-{i}" for i in range(int(args.populate[1]))]
        asyncio.run(populate(args.populate[0], names, args.pods, args.timeout))
        return 0

    # SIGTERM (a CI timeout, run_all.py giving up) still stops the cluster in `finally`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"cores: {os.cpu_count()}; starting {args.nodes} hollow nodes", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        began = time.monotonic()
        sim = SimCluster.start(
            Path(tmp),
            workers=0,
            hollow_nodes=args.nodes,
            profile="upstream",
            ready_timeout=600,
            disabled_controllers=SILENT,
        )
        try:
            print(f"  nodes Ready after {time.monotonic() - began:.0f}s", flush=True)
            stop_hollow_agent(sim)
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--pods",
                    str(args.pods),
                    "--timeout",
                    str(args.timeout),
                    "--populate",
                    str(sim.kubeconfig_path),
                    str(args.nodes),
                ],
                check=True,
            )
            cluster = Cluster.from_kubeconfig(sim.kubeconfig_path, api_deadline=120)
            try:
                figures = measure(cluster, args.pods, args.repeat)
            finally:
                cluster.close()
        finally:
            sim.stop()
    figures["nodes"], figures["pods"] = args.nodes, args.pods
    report(figures, args.nodes, args.pods)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
