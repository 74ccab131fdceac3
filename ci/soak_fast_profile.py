"""Soak: healthy simulated nodes must stay Ready under CPU load with the fast profile.

    .venv/bin/python ci/soak_fast_profile.py [--agents 3] [--duration 1800] [--load 2]

Starts an API server (fast profile, every controller on), `--agents` node agent processes and
`--pods` pods per node, optionally `--load` busy-loop processes, then watches Nodes and Leases
for `--duration` seconds. Prints the number of Ready transitions away from True (must be 0:
no profile may flap) and the largest gap between two Lease renewals seen by the watch, next
to the node monitor grace period. Exit status 1 when any node flapped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pytest_k8sdr.sim.addresses import node_address, node_pod_cidr
from pytest_k8sdr.sim.client.informer import Informer
from pytest_k8sdr.sim.client.kubeconfig import load_kubeconfig
from pytest_k8sdr.sim.client.rest import ApiClient, Gate
from pytest_k8sdr.sim.client.tasks import cancel_all
from pytest_k8sdr.sim.profiles import FAST

BUSY_LOOP = "while True: pass"


def _ready(node: dict[str, Any] | None) -> str:
    for c in ((node or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return str(c.get("status"))
    return "None"


async def soak(state_dir: Path, names: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Watch nodes and leases for the duration; the figures."""
    api = ApiClient(load_kubeconfig(state_dir / "kubeconfig"), Gate(), request_timeout=30)
    nodes = Informer(api, "/api/v1/nodes")
    leases = Informer(api, "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases")
    last_ready: dict[str, str] = {}
    flaps: list[dict[str, Any]] = []
    last_renewal: dict[str, float] = {}
    lease_events = 0
    max_gap: dict[str, float] = {}
    measuring = asyncio.Event()

    def on_node(etype: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        key = str(((new or old) or {}).get("metadata", {}).get("name"))
        now_ready = _ready(new)
        if measuring.is_set() and last_ready.get(key) == "True" and now_ready != "True":
            reason = next(
                (c.get("reason") for c in (new or {}).get("status", {}).get("conditions", [])
                 if c.get("type") == "Ready"),
                "deleted",
            )  # fmt: skip
            flaps.append({"node": key, "to": now_ready, "reason": reason, "at": time.time()})
            print(f"FLAP: {key} Ready True -> {now_ready} ({reason})", flush=True)
        last_ready[key] = now_ready

    def on_lease(etype: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        key = str(((new or old) or {}).get("metadata", {}).get("name"))
        nonlocal lease_events
        now = time.monotonic()
        if measuring.is_set():
            lease_events += 1
        if measuring.is_set() and key in last_renewal:
            max_gap[key] = max(max_gap.get(key, 0.0), now - last_renewal[key])
        last_renewal[key] = now

    nodes.add_handler(on_node)
    leases.add_handler(on_lease)
    tasks = [asyncio.create_task(nodes.run()), asyncio.create_task(leases.run())]
    try:
        began = time.monotonic()
        while not all(last_ready.get(n) == "True" for n in names):
            if time.monotonic() - began > 60:
                raise SystemExit(f"nodes not Ready after 60s: {last_ready}")
            await asyncio.sleep(0.2)
        for i in range(args.pods):
            for name in names:
                body = {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": f"soak-{name}-{i}", "namespace": "default"},
                    "spec": {
                        "nodeName": name,
                        "containers": [
                            {"name": "web", "image": "sim", "ports": [{"containerPort": 8080}]}
                        ],
                    },
                }
                await api.request("POST", "/api/v1/namespaces/default/pods", body=body)
        load = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(args.load)]
        measuring.set()
        print(f"soaking {len(names)} agents for {args.duration:.0f}s with {args.load} busy loops",
              flush=True)  # fmt: skip
        try:
            end = time.monotonic() + args.duration
            while time.monotonic() < end:
                await asyncio.sleep(min(60.0, max(0.0, end - time.monotonic())))
                worst = max(max_gap.values(), default=0.0)
                print(f"  t+{args.duration - (end - time.monotonic()):.0f}s flaps={len(flaps)} "
                      f"max_lease_gap={worst:.2f}s renewals_seen={lease_events}",
                      flush=True)  # fmt: skip
        finally:
            for proc in load:
                proc.kill()
                proc.wait()
    finally:
        await cancel_all(tasks)
        await api.close()
    return {
        "agents": len(names),
        "duration_s": args.duration,
        "busy_loops": args.load,
        "ready_transitions_away_from_true": len(flaps),
        "flaps": flaps,
        "max_lease_renewal_gap_s": round(max(max_gap.values(), default=0.0), 3),
        # About agents x duration / renew interval when the watch kept up.
        "lease_renewals_seen": lease_events,
        "lease_renew_interval_s": FAST.lease_renew_interval,
        "node_monitor_grace_period_s": FAST.node_monitor_grace_period,
    }


def main() -> None:
    """Run the soak and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--pods", type=int, default=5, help="pods per node")
    parser.add_argument("--duration", type=float, default=1800.0, help="seconds")
    parser.add_argument("--load", type=int, default=0, help="busy-loop processes to run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        state_dir = Path(tmp)
        log = (state_dir / "server.log").open("wb")
        server = subprocess.Popen(
            [sys.executable, "-m", "pytest_k8sdr.sim.controlplane", "--state-dir", tmp,
             "--profile", "fast"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        procs = [server]
        try:
            deadline = time.monotonic() + 30
            while not (state_dir / "apiserver.json").exists():
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit((state_dir / "server.log").read_text())
                time.sleep(0.05)
            names = [f"soak-worker{i + 1}" for i in range(args.agents)]
            for i, name in enumerate(names):
                agent_log = (state_dir / f"{name}.log").open("wb")
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "pytest_k8sdr.sim.node",
                     "--kubeconfig", str(state_dir / "kubeconfig"), "--node-name", name,
                     "--address", node_address(300 + i), "--pod-cidr", node_pod_cidr(300 + i),
                     "--profile", "fast"],
                    stdout=agent_log, stderr=subprocess.STDOUT,
                ))  # fmt: skip
            figures = asyncio.run(soak(state_dir, names, args))
        finally:
            for proc in reversed(procs):
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    print(json.dumps(figures, indent=2))
    print(f"ready_transitions_away_from_true={figures['ready_transitions_away_from_true']}")
    sys.exit(1 if figures["ready_transitions_away_from_true"] else 0)


if __name__ == "__main__":
    main()
