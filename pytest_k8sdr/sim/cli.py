"""`k8sdr sim ...`: start, inspect and stop the simulated cluster, and act on its nodes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from pytest_k8sdr.sim.errors import SimError, SimLaunchError
from pytest_k8sdr.sim.faults import FaultConfig
from pytest_k8sdr.sim.launcher import SimCluster
from pytest_k8sdr.sim.profiles import PROFILES

NODE_OPS: dict[str, Callable[[SimCluster, str], None]] = {
    "kill": SimCluster.kill_node,
    "stop": SimCluster.stop_node,
    "start": SimCluster.start_node,
    "freeze": SimCluster.freeze_node,
    "thaw": SimCluster.thaw_node,
    "partition": SimCluster.partition_node,
    "heal": SimCluster.heal_node,
    "stop-kubelet": SimCluster.stop_kubelet,
    "start-kubelet": SimCluster.start_kubelet,
    "stop-runtime": SimCluster.stop_runtime,
    "start-runtime": SimCluster.start_runtime,
}


def default_state_dir() -> Path:
    """$K8SDR_SIM_STATE_DIR, else ~/.k8sdr/sim."""
    env = os.environ.get("K8SDR_SIM_STATE_DIR")
    return Path(env) if env else Path.home() / ".k8sdr" / "sim"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="k8sdr sim", description="The simulated Kubernetes cluster."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def with_dir(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--state-dir",
            type=Path,
            default=None,
            help="state directory (default: $K8SDR_SIM_STATE_DIR or ~/.k8sdr/sim)",
        )
        return p

    up = with_dir(sub.add_parser("up", help="start a simulated cluster in the background"))
    up.add_argument(
        "--workers", type=int, default=3, help="worker nodes, one agent process each (default 3)"
    )
    up.add_argument(
        "--zones",
        default="",
        metavar="Z,Z,...",
        help="each node's topology.kubernetes.io/zone, the control plane first, then each worker",
    )
    up.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="fast",
        help="timings: upstream's defaults, or fast ones so a runbook takes seconds (default fast)",
    )
    up.add_argument(
        "--port", type=int, default=0, help="API server port on 127.0.0.1 (default 0: any free one)"
    )
    up.add_argument(
        "--hollow-nodes",
        type=int,
        default=0,
        help="extra nodes served by one shared agent process, for scale (default 0)",
    )
    up.add_argument(
        "--disable-controller",
        action="append",
        default=[],
        metavar="NAME",
        help="start without this controller (repeatable; names: k8sdr sim controller list)",
    )
    up.add_argument(
        "--ready-timeout",
        type=float,
        default=30.0,
        help="seconds to wait for every node to be Ready (default 30)",
    )
    up.add_argument(
        "--fault-error-rate",
        type=float,
        default=0.0,
        help="share of API requests answered 500 or 429 instead of served, 0..1 (default 0)",
    )
    up.add_argument(
        "--fault-latency-ms",
        type=float,
        default=0.0,
        help="milliseconds added to every API request (default 0)",
    )
    up.add_argument(
        "--fault-watch-cut-seconds",
        type=float,
        default=0.0,
        help="close every watch stream after this many seconds (default 0: never)",
    )
    with_dir(sub.add_parser("down", help="stop the simulated cluster"))
    with_dir(sub.add_parser("status", help="show the simulated cluster and its nodes"))
    node = with_dir(sub.add_parser("node", help="act on one simulated node"))
    node.add_argument("op", choices=sorted(NODE_OPS), help="what to do to the node")
    node.add_argument("name", help="the node's name, as in kubectl get nodes")
    ctl = with_dir(
        sub.add_parser(
            "controller", help="list the controllers, or switch one on or off while it runs"
        )
    )
    ctl.add_argument(
        "op", choices=["list", "enable", "disable"], help="list them, or switch NAME on or off"
    )
    ctl.add_argument("name", nargs="?", help="the controller to switch (not with list)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `k8sdr sim` with `argv`; returns the exit code (2 for bad input, 1 for failures)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    state_dir: Path = args.state_dir or default_state_dir()
    try:
        if args.command == "up":
            faults = FaultConfig(
                error_rate=args.fault_error_rate,
                latency_ms=args.fault_latency_ms,
                watch_cut_seconds=args.fault_watch_cut_seconds,
            )
            cluster = SimCluster.start(
                state_dir,
                workers=args.workers,
                zones=args.zones.split(",") if args.zones else (),
                profile=args.profile,
                port=args.port,
                hollow_nodes=args.hollow_nodes,
                disabled_controllers=args.disable_controller,
                faults=faults if faults.enabled else None,
                ready_timeout=args.ready_timeout,
                owner_pid=None,  # a cluster `k8sdr sim up` starts runs until `k8sdr sim down`
            )
            print(cluster.kubeconfig_path)
            return 0
        if args.command == "down":
            try:
                cluster = SimCluster.attach(state_dir)
            except SimLaunchError as exc:
                print(f"k8sdr sim down: nothing to stop: {exc}", file=sys.stderr)
                return 0
            cluster.stop()
            print(f"stopped the simulated cluster of {state_dir}")
            return 0
        cluster = SimCluster.attach(state_dir)
        if args.command == "status":
            print(f"state dir:  {cluster.state_dir}")
            print(f"server:     {cluster.server_url} (pid {cluster.server_pid})")
            print(f"kubeconfig: {cluster.kubeconfig_path}")
            print(f"profile:    {cluster.profile}")
            print(f"owner:      {_owner(cluster)}")
            for name in cluster.node_names():
                try:
                    state = cluster.node_state(name)
                    address = cluster.node_address(name)
                except ValueError:
                    state, address = "hollow", "-"
                print(f"node {name:<28} {address:<14} {state}")
            return 0
        if args.command == "controller":
            return _controller(cluster, args.op, args.name)
        NODE_OPS[args.op](cluster, args.name)
        print(f"{args.op} {args.name}: {cluster.node_state(args.name)}")
        return 0
    except ValueError as exc:
        print(f"k8sdr sim {args.command}: {exc}", file=sys.stderr)
        return 2
    except (SimError, RuntimeError, OSError) as exc:
        print(f"k8sdr sim {args.command}: {exc}", file=sys.stderr)
        return 1


def _owner(cluster: SimCluster) -> str:
    """Who the cluster ends with, and whether it outlived them (then `k8sdr sim down` ends it)."""
    if cluster.owner_pid is None:
        return "none: it runs until `k8sdr sim down`"
    if cluster.orphaned():
        return f"pid {cluster.owner_pid}, which has ended: orphaned, `k8sdr sim down` stops it"
    return f"pid {cluster.owner_pid}: it stops when that process ends"


def _controller(cluster: SimCluster, op: str, name: str | None) -> int:
    if op == "list":
        for controller, running in cluster.controllers().items():
            print(f"{controller:<28} {'on' if running else 'off'}")
        return 0
    if not name:
        raise ValueError(f"controller {op} needs a controller name")
    changed = cluster.set_controller(name, enabled=op == "enable")
    state = "on" if op == "enable" else "off"
    print(f"{name}: {state}" + ("" if changed else " (already)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
