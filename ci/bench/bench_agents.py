"""Benchmark: CPU and memory of node agents against a running simulated API server.

    .venv/bin/python ci/bench/bench_agents.py [--window 20] [--pods 30]
        [--phases three,hollow100,hollow1000] [--profile-1000 upstream|fast] [--json PATH]
        [--cprofile DIR]

Phases, each measured over `--window` seconds once every node is Ready and every pod Running:
a bare Python process with the agent's imports (the baseline), 3 agent processes, one hollow
agent with 100 nodes, one with 1,000 nodes; `--pods` pods per node (POSTed with spec.nodeName:
the script plays scheduler, every controller is disabled). Prints figures and ratios to the
baseline measured in the same run; asserts nothing. While pods start, the pending count is
printed every `--progress` seconds; `start_rate_pods_per_s` is pods / (seconds from the first
POST to all Running: kubelets start pods while the POSTs go on), and the CPU seconds agents
and server spent from start to all Running are reported. `--cprofile DIR` runs the hollow
agents under cProfile (DIR/NAME.prof).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pytest_k8sdr.sim.addresses import node_address, node_pod_cidr
from pytest_k8sdr.sim.apimachinery.clock import parse_rfc3339
from pytest_k8sdr.sim.client.kubeconfig import load_kubeconfig
from pytest_k8sdr.sim.client.rest import ApiClient, Gate
from pytest_k8sdr.sim.profiles import get_profile

CLK_TCK = os.sysconf("SC_CLK_TCK")


def start_server(state_dir: Path, profile: str) -> subprocess.Popen[bytes]:
    """Start the API server with every controller disabled; wait for its kubeconfig."""
    try:
        from pytest_k8sdr.sim.controllers import CONTROLLERS

        disabled = sorted(CONTROLLERS)
    except Exception:
        disabled = []
    args = [sys.executable, "-m", "pytest_k8sdr.sim.controlplane", "--state-dir", str(state_dir)]
    args += ["--profile", profile]
    for name in disabled:
        args += ["--disable-controller", name]
    log = (state_dir / "server.log").open("wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while not (state_dir / "apiserver.json").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"API server did not start: {(state_dir / 'server.log').read_text()}")
        time.sleep(0.05)
    return proc


def start_agent(
    state_dir: Path,
    name: str,
    index: int,
    profile: str,
    hollow: int | None = None,
    cprofile: Path | None = None,
) -> subprocess.Popen[bytes]:
    """One agent process; with `hollow`, nodes name-0.. at indexes index.. (sim/addresses.py)."""
    prof = ["-m", "cProfile", "-o", str(cprofile / f"{name}.prof")] if cprofile else []
    args = [
        sys.executable, *prof, "-m", "pytest_k8sdr.sim.node",
        "--kubeconfig", str(state_dir / "kubeconfig"),
        "--node-name", name, "--profile", profile,
        "--control-socket", str(state_dir / f"{name}.sock"),
    ]  # fmt: skip
    if hollow is None:
        args += ["--address", node_address(index), "--pod-cidr", node_pod_cidr(index)]
    else:
        args += ["--hollow", str(hollow), "--hollow-first-index", str(index)]
    log = (state_dir / f"{name}.log").open("ab")
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM, then SIGKILL what is left."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mib(pid: int) -> float:
    """Resident memory in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(pids: list[int], window: float) -> tuple[float, float]:
    """(CPU in % of one core, summed over pids; RSS MiB summed) over `window` seconds."""
    before = sum(cpu_seconds(p) for p in pids)
    time.sleep(window)
    after = sum(cpu_seconds(p) for p in pids)
    return 100 * (after - before) / window, sum(rss_mib(p) for p in pids)


def lease_renewals(state_dir: Path, names: list[str]) -> int:
    """Lease renewals so far, summed over the agents' control sockets (`status` op)."""
    total = 0
    for name in names:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(30)
            sock.connect(str(state_dir / f"{name}.sock"))
            sock.sendall(b'{"op": "status"}\n')
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
        total += sum(n["leaseRenewals"] for n in json.loads(data)["state"]["nodes"])
    return total


async def oldest_lease_age(api: ApiClient) -> float:
    """Seconds since the least recently renewed Lease in kube-node-lease was renewed."""
    path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
    items = (await api.request("GET", path)).get("items") or []
    renewed = [parse_rfc3339((i.get("spec") or {}).get("renewTime")) or 0.0 for i in items]
    return round(time.time() - min(renewed), 2) if renewed else 0.0


async def lease_age(state_dir: Path) -> float:
    """`oldest_lease_age` with a client of its own."""
    api = ApiClient(load_kubeconfig(state_dir / "kubeconfig"), Gate(), request_timeout=120)
    try:
        return await oldest_lease_age(api)
    finally:
        await api.close()


def pod_body(name: str, node: str) -> dict[str, Any]:
    """A pod bound to `node`."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "web", "image": "sim", "ports": [{"containerPort": 8080}]}],
        },
    }


def node_ready(node: dict[str, Any]) -> bool:
    """Whether the Node's Ready condition is True."""
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


async def populate(
    state_dir: Path,
    nodes: list[str],
    pods_per_node: int,
    prefix: str,
    timeout: float,
    progress: float,
) -> dict[str, float]:
    """Wait for the nodes, create their pods, wait until all run; the timings (seconds)."""
    api = ApiClient(load_kubeconfig(state_dir / "kubeconfig"), Gate(), request_timeout=120)
    began = time.monotonic()
    try:
        wanted = set(nodes)
        while True:
            items = (await api.request("GET", "/api/v1/nodes")).get("items") or []
            if wanted <= {n["metadata"]["name"] for n in items if node_ready(n)}:
                break
            if time.monotonic() - began > timeout:
                raise SystemExit(f"nodes not Ready after {timeout}s")
            await asyncio.sleep(1)
        nodes_ready = time.monotonic()
        print(f"  {len(nodes)} nodes Ready after {nodes_ready - began:.1f}s", flush=True)
        sem = asyncio.Semaphore(16)

        async def create(body: dict[str, Any]) -> None:
            async with sem:
                await api.request("POST", "/api/v1/namespaces/default/pods", body=body)

        bodies = [
            pod_body(f"{prefix}-{node}-{i}", node) for node in nodes for i in range(pods_per_node)
        ]
        await asyncio.gather(*(create(b) for b in bodies))
        created = time.monotonic()
        print(f"  {len(bodies)} pods created in {created - nodes_ready:.1f}s", flush=True)
        last_print = created
        stalest = 0.0
        while True:
            # A cheap probe (a full list of 30,000 pods each second would load the server).
            pending = await api.request(
                "GET",
                "/api/v1/pods",
                params={"fieldSelector": "status.phase!=Running", "limit": "1"},
            )
            # Sampled every pass (a list of the Leases: cheap), so a fast start is measured too.
            age = await oldest_lease_age(api)
            stalest = max(stalest, age)
            if not pending.get("items"):
                break
            now = time.monotonic()
            if now - began > timeout:
                raise SystemExit(f"pods not Running after {timeout}s")
            if now - last_print >= progress:
                last_print = now
                left = 1 + int((pending.get("metadata") or {}).get("remainingItemCount") or 0)
                print(
                    f"  {now - created:6.1f}s: {len(bodies) - left} of {len(bodies)} Running, "
                    f"oldest lease {age:.1f}s old, load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
            await asyncio.sleep(1)
        running = time.monotonic()
        print(f"  all Running {running - created:.1f}s after creation", flush=True)
    finally:
        await api.close()
    return {
        "nodes_ready_s": round(nodes_ready - began, 1),
        "pods_created_s": round(created - nodes_ready, 1),
        "running_after_created_s": round(running - created, 1),
        "ready_after_s": round(running - began, 1),
        "start_rate_pods_per_s": round(len(bodies) / max(running - nodes_ready, 1e-3), 1),
        "oldest_lease_age_s_while_starting": round(stalest, 2),
    }


def phase(
    label: str,
    state_dir: Path,
    server: subprocess.Popen[bytes],
    procs: list[subprocess.Popen[bytes]],
    nodes: list[str],
    args: argparse.Namespace,
    profile_name: str,
    agents: list[str],
) -> dict[str, Any]:
    """Populate, measure agents and server over the window, stop the agents."""
    profile = get_profile(profile_name)
    try:
        timings: dict[str, Any] = asyncio.run(
            populate(state_dir, nodes, args.pods, label, args.timeout, args.progress)
        )
        timings["agent_cpu_s_to_running"] = round(sum(cpu_seconds(p.pid) for p in procs), 1)
        timings["server_cpu_s_to_running"] = round(cpu_seconds(server.pid), 1)
        timings["agent_rss_mib_at_running"] = round(sum(rss_mib(p.pid) for p in procs), 1)
        renewals_before = lease_renewals(state_dir, agents)
        server_before = cpu_seconds(server.pid)
        cpu, rss = measure([p.pid for p in procs], args.window)
        server_cpu = 100 * (cpu_seconds(server.pid) - server_before) / args.window
        renewals = (lease_renewals(state_dir, agents) - renewals_before) / args.window
        server_rss = rss_mib(server.pid)
        stalest = asyncio.run(lease_age(state_dir))
    finally:
        stop(procs)
    return {
        "nodes": len(nodes),
        "pods": len(nodes) * args.pods,
        "processes": len(procs),
        **timings,
        "agent_cpu_pct_of_core": round(cpu, 2),
        "agent_rss_mib": round(rss, 1),
        "agent_cpu_pct_per_node": round(cpu / len(nodes), 3),
        "agent_rss_mib_per_node": round(rss / len(nodes), 2),
        "server_cpu_pct_of_core": round(server_cpu, 2),
        "server_rss_mib": round(server_rss, 1),
        "lease_renewals_per_s": round(renewals, 1),
        "lease_renewals_per_s_wanted": round(len(nodes) / profile.lease_renew_interval, 1),
        "oldest_lease_age_s": stalest,
        "lease_duration_s": profile.node_lease_duration,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    """Run the phases and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--pods", type=int, default=30)
    parser.add_argument(
        "--profile", default="fast", help="profile of the 3-agent and 100-node phases"
    )
    parser.add_argument(
        "--profile-1000", default="upstream",
        help="profile of the 1,000-node phase (fast means 1,000 lease writes/s)",
    )  # fmt: skip
    parser.add_argument("--phases", default="three,hollow100,hollow1000")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--progress", type=float, default=10.0, help="seconds between reports")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--cprofile", type=Path, help="profile hollow agents into this directory")
    args = parser.parse_args()
    wanted = set(args.phases.split(","))
    unknown = wanted - {"three", "hollow100", "hollow1000"}
    if unknown:
        parser.error(f"--phases: unknown {', '.join(sorted(unknown))}")
    if args.cprofile is not None:
        args.cprofile.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {}

    # Baseline: an idle Python process holding the agent's imports.
    base = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import aiohttp, yaml, time; import pytest_k8sdr.sim.node.agent; time.sleep(3600)",
        ]
    )
    time.sleep(2)
    base_cpu, base_rss = measure([base.pid], min(args.window, 5))
    stop([base])
    figures["baseline"] = {"cpu_pct_of_core": round(base_cpu, 2), "rss_mib": round(base_rss, 1)}

    runs: list[tuple[str, str, int | None, int]] = [
        ("three", args.profile, None, 3),
        ("hollow100", args.profile, 100, 1),
        ("hollow1000", args.profile_1000, 1000, 1),
    ]
    runs = [run for run in runs if run[0] in wanted]
    for label, profile, hollow, count in runs:
        with tempfile.TemporaryDirectory(prefix=f"bench-{label}-") as tmp:
            state_dir = Path(tmp)
            server = start_server(state_dir, profile)
            try:
                if hollow is None:
                    names = [f"bench-{i}" for i in range(count)]
                    procs = [
                        start_agent(state_dir, n, 100 + i, profile) for i, n in enumerate(names)
                    ]
                else:
                    procs = [start_agent(state_dir, "hollow", 100, profile, hollow, args.cprofile)]
                    names = [f"hollow-{i}" for i in range(hollow)]
                agents = names if hollow is None else ["hollow"]
                result = phase(label, state_dir, server, procs, names, args, profile, agents)
                result["profile"] = profile
                result["rss_vs_baseline"] = round(result["agent_rss_mib"] / base_rss / count, 2)
                figures[label] = result
            finally:
                stop([server])
        print(f"{label}: {json.dumps(figures[label])}", flush=True)
    if "three" in figures and "hollow100" in figures:
        per_proc = figures["three"]["agent_cpu_pct_per_node"] or 1e-9
        figures["hollow100_cpu_per_node_vs_process_per_node"] = round(
            figures["hollow100"]["agent_cpu_pct_per_node"] / per_proc, 3
        )
        figures["hollow100_rss_per_node_vs_process_per_node"] = round(
            figures["hollow100"]["agent_rss_mib_per_node"]
            / figures["three"]["agent_rss_mib_per_node"],
            3,
        )
    print(json.dumps(figures, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
