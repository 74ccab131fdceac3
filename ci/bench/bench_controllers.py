"""Benchmark: the simulated controllers' CPU per node-monitor pass and their memory.

    .venv/bin/python ci/bench/bench_controllers.py [--nodes 1000] [--pods 30000] [--window 10]

In one process (no HTTP): a Store holding `--nodes` Ready nodes with Leases and `--pods`
Running pods owned by ReplicaSets of 300 (one Service each), every controller started, and
a loop renewing every Lease each renew interval as kubelets would. Prints the CPU time of the
node lifecycle monitor pass (mean, max) next to a baseline pass measured in the same run on a
tenth of the nodes, the CPU share of everything else, the RSS the controllers' caches add over
the populated store alone, and the cost of one node dying (MarkPodsNotReady and the taints).
Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from pytest_k8sdr.sim import Store
from pytest_k8sdr.sim.apiserver.admission.defaulttolerationseconds import add_default_tolerations
from pytest_k8sdr.sim.apiserver.registry.eviction import register as register_eviction
from pytest_k8sdr.sim.controllers import CONTROLLERS
from pytest_k8sdr.sim.controllers.controller import Context, Controller
from pytest_k8sdr.sim.controllers.nodelifecycle import NodeLifecycleController
from pytest_k8sdr.sim.profiles import FAST, Profile

JSON = dict[str, Any]
PODS_PER_SET = 300


def rss_mib() -> float:
    """Resident set size of this process."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def micro_now() -> str:
    """metav1.MicroTime now."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def populate(store: Store, nodes: int, pods: int) -> list[str]:
    """Ready nodes with Leases, ReplicaSets with Services, bound Running pods."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    names = [f"n{i}" for i in range(nodes)]
    for i, name in enumerate(names):
        node = store.create(
            "nodes",
            None,
            {
                "metadata": {
                    "name": name,
                    "labels": {
                        "kubernetes.io/hostname": name,
                        "topology.kubernetes.io/zone": f"z{i % 3}",
                    },
                }
            },
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
            "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "110"},
        }
        store.update("nodes", None, name, node, subresource="status")
        store.create(
            "leases",
            "kube-node-lease",
            {
                "metadata": {"name": name},
                "spec": {
                    "holderIdentity": name,
                    "leaseDurationSeconds": 40,
                    "renewTime": micro_now(),
                },
            },
        )
    sets = max(1, pods // PODS_PER_SET)
    n = 0
    for s in range(sets):
        app = f"app{s}"
        template: JSON = {
            "metadata": {"labels": {"app": app}},
            "spec": {
                "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 8080}]}]
            },
        }
        rs = store.create(
            "replicasets",
            "default",
            {
                "metadata": {"name": app},
                "spec": {
                    "replicas": PODS_PER_SET,
                    "selector": {"matchLabels": {"app": app}},
                    "template": template,
                },
            },
        )
        store.create(
            "services",
            "default",
            {
                "metadata": {"name": app},
                "spec": {"selector": {"app": app}, "ports": [{"port": 80, "targetPort": 8080}]},
            },
        )
        ref = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": app,
            "uid": rs["metadata"]["uid"],
            "controller": True,
        }
        # As DefaultTolerationSeconds would have admitted them.
        add_default_tolerations(
            template,
            FAST.default_not_ready_toleration_seconds,
            FAST.default_unreachable_toleration_seconds,
        )
        for _ in range(PODS_PER_SET):
            if n >= pods:
                break
            pod = store.create(
                "pods",
                "default",
                {
                    "metadata": {
                        "generateName": f"{app}-",
                        "labels": {"app": app},
                        "ownerReferences": [ref],
                    },
                    "spec": {**template["spec"], "nodeName": names[n % nodes]},
                },
            )
            pod["status"] = {
                "phase": "Running",
                "podIP": f"127.{16 + n // 65000}.{(n // 250) % 256}.{n % 250 + 1}",
                "conditions": [
                    {"type": t, "status": "True", "lastTransitionTime": now}
                    for t in ("Initialized", "ContainersReady", "Ready", "PodScheduled")
                ],
            }
            store.update("pods", "default", pod["metadata"]["name"], pod, subresource="status")
            n += 1
    return names


def start_all(
    store: Store, profile: Profile
) -> tuple[list[asyncio.Task[None]], NodeLifecycleController]:
    """start_controllers, keeping a handle on the node lifecycle controller."""
    register_eviction(store)
    ctx = Context(store, profile)
    tasks: list[asyncio.Task[None]] = []
    nlc: NodeLifecycleController | None = None
    for cls in CONTROLLERS.values():
        controller: Controller = cls(ctx)
        tasks.extend(controller.start())
        if isinstance(controller, NodeLifecycleController):
            nlc = controller
    assert nlc is not None
    return tasks, nlc


async def heartbeat(store: Store, names: list[str], period: float, dead: set[str]) -> None:
    """Renew every live node's Lease each period, as the kubelets would."""
    while True:
        for name in names:
            if name in dead:
                continue
            lease = store.get("leases", "kube-node-lease", name)
            lease["spec"]["renewTime"] = micro_now()
            store.update("leases", "kube-node-lease", name, lease)
        await asyncio.sleep(period)


def time_passes(nlc: NodeLifecycleController) -> list[float]:
    """Wrap the monitor pass to record its CPU time."""
    samples: list[float] = []
    original = nlc._monitor_node_health

    def timed() -> None:
        start = time.process_time()
        original()
        samples.append(time.process_time() - start)

    nlc._monitor_node_health = timed  # type: ignore[method-assign]
    return samples


async def run_phase(nodes: int, pods: int, window: float, kill: int) -> dict[str, float]:
    """One cluster size: populate, start, measure."""
    profile = FAST.replace(name="bench")
    gc.collect()
    rss0 = rss_mib()
    store = Store()
    t = time.perf_counter()
    names = populate(store, nodes, pods)
    populate_s = time.perf_counter() - t
    gc.collect()
    rss_store = rss_mib()
    t = time.process_time()
    tasks, nlc = start_all(store, profile)
    samples = time_passes(nlc)
    dead: set[str] = set()
    beat = asyncio.get_running_loop().create_task(
        heartbeat(store, names, profile.lease_renew_interval, dead)
    )
    await asyncio.sleep(2.0)  # initial syncs (endpoint slices, statuses)
    startup_cpu = time.process_time() - t
    gc.collect()
    rss_ctrl = rss_mib()
    samples.clear()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(window)
    steady_cpu = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    steady = list(samples)
    result = {
        "nodes": nodes,
        "pods": pods,
        "populate_s": populate_s,
        "rss_store_mib": rss_store - rss0,
        "rss_controllers_mib": rss_ctrl - rss_store,
        "startup_cpu_s": startup_cpu,
        "pass_mean_ms": 1000 * statistics.mean(steady) if steady else 0.0,
        "pass_max_ms": 1000 * max(steady) if steady else 0.0,
        "passes": len(steady),
        "cpu_share": steady_cpu,
    }
    if kill:
        victims = names[:kill]
        dead.update(victims)
        samples.clear()
        cpu0 = time.process_time()
        killed_at = time.perf_counter()

        def tainted() -> int:
            return sum(
                1
                for v in victims
                if any(
                    t_["effect"] == "NoExecute"
                    for t_ in (store.get("nodes", None, v).get("spec") or {}).get("taints") or []
                )
            )

        while tainted() < len(victims) and time.perf_counter() - killed_at < 60:
            await asyncio.sleep(0.1)
        result["kill_to_tainted_s"] = time.perf_counter() - killed_at
        result["kill_passes_max_ms"] = 1000 * max(samples) if samples else 0.0
        result["kill_cpu_s"] = time.process_time() - cpu0
        result["killed_tainted"] = tainted()
    beat.cancel()
    for task in tasks:
        task.cancel()
    await asyncio.gather(beat, *tasks, return_exceptions=True)
    return result


def main() -> None:
    """Parse arguments, run the baseline and the full size, print figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=30000)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--kill", type=int, default=10)
    args = parser.parse_args()
    base = asyncio.run(run_phase(max(1, args.nodes // 10), max(1, args.pods // 10), args.window, 0))
    full = asyncio.run(run_phase(args.nodes, args.pods, args.window, args.kill))
    print(f"pid {os.getpid()}")
    for label, r in (("baseline", base), ("full", full)):
        print(
            f"{label:8s} nodes={r['nodes']:.0f} pods={r['pods']:.0f} "
            f"populate={r['populate_s']:.1f}s "
            f"store={r['rss_store_mib']:.0f}MiB controllers=+{r['rss_controllers_mib']:.0f}MiB "
            f"startup_cpu={r['startup_cpu_s']:.2f}s monitor_pass mean={r['pass_mean_ms']:.2f}ms "
            f"max={r['pass_max_ms']:.2f}ms over {r['passes']:.0f} passes; "
            f"process CPU while idle={100 * r['cpu_share']:.1f}% of one core"
        )
    if base["pass_mean_ms"]:
        print(
            "monitor pass cost ratio full/baseline: "
            f"{full['pass_mean_ms'] / base['pass_mean_ms']:.1f}x "
            f"for {args.nodes / max(1, args.nodes // 10):.0f}x the nodes "
            f"({1000 * full['pass_mean_ms'] / max(1, args.nodes):.1f}us per node)"
        )
    if base["rss_controllers_mib"] > 0:
        print(
            f"controller memory ratio full/baseline: "
            f"{full['rss_controllers_mib'] / base['rss_controllers_mib']:.1f}x"
        )
    if args.kill:
        print(
            f"{args.kill} nodes killed: slowest monitor pass {full['kill_passes_max_ms']:.1f}ms, "
            f"{full['killed_tainted']:.0f}/{args.kill} NoExecute-tainted "
            f"{full['kill_to_tainted_s']:.1f}s after the kill (grace "
            f"{FAST.node_monitor_grace_period:.0f}s), CPU meanwhile {full['kill_cpu_s']:.2f}s"
        )


if __name__ == "__main__":
    main()
