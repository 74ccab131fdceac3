"""Start, find and stop a simulated cluster: the API server process and one agent per node.

Everything it starts is recorded in DIR/state.json, so `attach` (another process, the CLI)
acts on exactly those processes and `stop` ends exactly them.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pytest_k8sdr.sim.addresses import node_address, node_pod_cidr
from pytest_k8sdr.sim.apiserver.storage.durable import (
    LOG,
    SNAPSHOT,
    Record,
    read_snapshot,
    read_store,
    write_snapshot,
)
from pytest_k8sdr.sim.client.blocking import BlockingClient
from pytest_k8sdr.sim.errors import SimLaunchError
from pytest_k8sdr.sim.faults import FaultConfig
from pytest_k8sdr.sim.node import control
from pytest_k8sdr.sim.processes import (
    AGENT_MODULE,
    CHILDREN,
    CONTROL_PLANE_MODULE,
    STATE_FILE,
    alive,
    check_port_free,
    claim_slot,
    end_slot_keeper,
    is_ours,
    keep_slot,
    reclaim_slot,
    start_control_plane,
    wait_gone,
)
from pytest_k8sdr.sim.profiles import get_profile

__all__ = ["CONTROL_PLANE", "NodeShape", "SimCluster", "SimLaunchError"]

CLUSTER = "k8sdr"
CONTROL_PLANE = f"{CLUSTER}-control-plane"
# sun_path holds 108 bytes on Linux; pytest's temporary directories easily exceed it.
_MAX_SOCKET_PATH = 100


def _socket_path(state_dir: Path, name: str) -> Path:
    """The agent's control socket: in the state dir, or a short per-cluster temp dir if too long."""
    path = state_dir / "agents" / f"{name}.sock"
    if len(str(path)) <= _MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha1(str(state_dir).encode()).hexdigest()[:12]
    short = Path(tempfile.gettempdir()) / f"k8sdr-{digest}"
    short.mkdir(mode=0o700, exist_ok=True)
    return short / f"{name}.sock"


def worker_name(n: int) -> str:
    """Name of the n-th worker (1-based), as kind names them."""
    return f"{CLUSTER}-worker" if n == 1 else f"{CLUSTER}-worker{n}"


@dataclass(frozen=True)
class NodeShape:
    """One node of a cluster shaped after another (the dry run's twin): who it is and its size.

    The kubelet registers `name` with `zone`, `cpu`, `memory` and `max_pods` as its capacity;
    `labels`, `taints` and `unschedulable` are then set through the API, as an admin (or
    kubeadm) sets role labels and taints a kubelet may not set on itself. A node that is not
    `ready` has its agent stopped once the cluster is up, so it goes NotReady as it is there.
    """

    name: str
    labels: tuple[tuple[str, str], ...] = ()
    taints: tuple[tuple[str, str, str], ...] = ()  # key, value, effect
    zone: str | None = None
    cpu: str = "2"
    memory: str = "8Gi"
    max_pods: int = 110
    unschedulable: bool = False
    ready: bool = True

    def agent_args(self) -> list[str]:
        """The node agent's command line for this shape's registration flags."""
        args = ["--cpu", self.cpu, "--memory", self.memory, "--max-pods", str(self.max_pods)]
        return [*args, "--zone", self.zone] if self.zone else args

    def patch(self) -> dict[str, Any]:
        """The strategic merge patch giving a registered Node its labels and taints."""
        taints = [{"key": k, "effect": e, **({"value": v} if v else {})} for k, v, e in self.taints]
        return {
            "metadata": {"labels": dict(self.labels)},
            "spec": {"taints": taints or None, "unschedulable": self.unschedulable or None},
        }


@dataclass
class _Agent:
    name: str
    index: int
    pid: int
    args: list[str]
    state: str
    socket: str
    hollow: bool = False


class SimCluster:
    """A running simulated cluster (started here or attached from its state dir)."""

    def __init__(self, state_dir: Path, data: dict[str, Any]) -> None:
        self.state_dir = state_dir
        self._data = data
        self.kubeconfig_path = Path(data["kubeconfig"])
        self.server_url: str = data["url"]
        self.token: str = data["token"]
        self.profile: str = data["profile"]
        self._server_pid: int = int(data["server"]["pid"])
        self.slot: int = int(data.get("slot", 0))
        owner = data.get("owner_pid")
        # The process whose end ends the cluster; None: owned by nobody (`k8sdr sim up`).
        self.owner_pid: int | None = None if owner is None else int(owner)
        self._agents: dict[str, _Agent] = {
            name: _Agent(name=name, **a) for name, a in data.get("agents", {}).items()
        }

    # -- construction ---------------------------------------------------------------

    @classmethod
    def start(
        cls,
        state_dir: Path,
        *,
        workers: int = 3,
        profile: str = "fast",
        port: int = 0,
        disabled_controllers: Sequence[str] = (),
        faults: FaultConfig | None = None,
        hollow_nodes: int = 0,
        ready_timeout: float = 30.0,
        server_args: Sequence[str] = (),
        owner_pid: int | Literal["caller"] | None = "caller",
        nodes: Sequence[NodeShape] = (),
        zones: Sequence[str] = (),
    ) -> SimCluster:
        """Start the server and the node agents; returns once the workers are Ready.

        `nodes` replaces kind's naming (a control plane and `workers` workers) by these nodes,
        each with its own agent, shaped as it says (`NodeShape`).

        `zones` gives each node of kind's naming its `topology.kubernetes.io/zone`, the control
        plane first, then each worker: the kubelet registers with it, as with a cloud provider
        (pkg/kubelet/kubelet_node_status.go initialNode), so it survives re-registration.

        The cluster ends when its owner ends: by default the calling process, or the process
        `owner_pid`; with None it is owned by nobody and runs until `stop` (`k8sdr sim up`).
        Its state dir records the owner, so `attach(state_dir).stop()` can end it any time.
        Bad input (unknown profile, negative counts, a port in use, an unwritable or busy
        state dir) is a ValueError before anything starts; a failed start is SimLaunchError
        and leaves nothing running.
        """
        get_profile(profile)
        if nodes and (workers or hollow_nodes):
            raise ValueError("give nodes, or workers and hollow_nodes, not both")
        if len({n.name for n in nodes}) != len(nodes):
            raise ValueError("nodes: every node needs a name of its own")
        if workers < 0 or hollow_nodes < 0:
            raise ValueError(
                f"workers and hollow_nodes must be >= 0 (got {workers}, {hollow_nodes})"
            )
        if zones and (nodes or len(zones) != workers + 1 or not all(zones)):
            raise ValueError(
                f"zones: one non-empty zone per node, the control plane first, then each of the "
                f"{workers} workers ({workers + 1} in all); got {list(zones)!r}"
                + (" (with nodes, give each NodeShape its zone)" if nodes else "")
            )
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be within 0-65535, got {port}")
        if ready_timeout <= 0:
            raise ValueError(f"ready_timeout must be > 0, got {ready_timeout}")
        owner = os.getpid() if owner_pid == "caller" else owner_pid
        if owner is not None and not alive(owner):
            raise ValueError(f"owner_pid {owner} is not a running process")
        state_dir = Path(state_dir).absolute()
        _check_state_dir(state_dir)
        if port:
            check_port_free("127.0.0.1", port)
        if (workers or hollow_nodes or nodes) and not _module_exists(AGENT_MODULE):
            raise ValueError(f"the node agent module {AGENT_MODULE} is not available")
        for stale in ("apiserver.json", "kubeconfig", STATE_FILE):
            with contextlib.suppress(FileNotFoundError):
                (state_dir / stale).unlink()
        # A new cluster: the durable store and the PKI of an earlier one are not its own.
        for old in ("store", "pki"):
            shutil.rmtree(state_dir / old, ignore_errors=True)
        deadline = time.monotonic() + ready_timeout
        slot, slot_fd = claim_slot()
        try:
            args = ["--port", str(port), "--profile", profile]
            for name in disabled_controllers:
                args += ["--disable-controller", name]
            if faults is not None:
                args += faults.to_args()
            args += [*server_args, *_owner_args(owner)]
            server_pid, info = start_control_plane(state_dir, args, deadline, slot_fd)
        finally:
            os.close(slot_fd)  # the server holds the slot from here on
        data: dict[str, Any] = {
            "state_dir": str(state_dir),
            "owner_pid": owner,
            "slot": slot,
            "kubeconfig": str(state_dir / "kubeconfig"),
            "url": info["url"],
            "token": info["token"],
            "profile": profile,
            "server": {
                "pid": server_pid,
                "state": "running",
                # What a restart passes: the same port and token, so clients keep working.
                "args": _restart_args(args, int(info["port"]), str(info["token"])),
            },
            "agents": {},
        }
        cluster = cls(state_dir, data)
        cluster._save()
        try:
            (state_dir / "agents").mkdir(exist_ok=True)
            if nodes:
                cluster._start_shaped(nodes, deadline)
                return cluster
            expected = [CONTROL_PLANE] if (workers or hollow_nodes) else []
            zone_of = [["--zone", z] for z in zones] or [[] for _ in range(workers + 1)]
            if workers or hollow_nodes:
                cluster._spawn_agent(
                    CONTROL_PLANE,
                    0,
                    taints="node-role.kubernetes.io/control-plane=:NoSchedule",
                    extra=zone_of[0],
                )
            for n in range(1, workers + 1):
                cluster._spawn_agent(worker_name(n), n, extra=zone_of[n])
                expected.append(worker_name(n))
            if hollow_nodes:
                cluster._spawn_agent(f"{CLUSTER}-hollow", workers + 1, hollow=hollow_nodes)
                expected += [f"{CLUSTER}-hollow-{i}" for i in range(hollow_nodes)]
            cluster._save()
            if expected:
                cluster.wait_nodes_ready(expected, max(0.1, deadline - time.monotonic()))
                # A kubelet may not set role labels; kubeadm applies this one through the API.
                cluster._client().request(
                    "PATCH",
                    f"/api/v1/nodes/{CONTROL_PLANE}",
                    {"metadata": {"labels": {"node-role.kubernetes.io/control-plane": ""}}},
                )
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _start_shaped(self, nodes: Sequence[NodeShape], deadline: float) -> None:
        """Start one agent per shape, give each Node its labels and taints, stop the unready."""
        for index, shape in enumerate(nodes):
            self._spawn_agent(shape.name, index, extra=shape.agent_args())
        self._save()
        self.wait_nodes_ready([n.name for n in nodes], max(0.1, deadline - time.monotonic()))
        client = self._client()
        for shape in nodes:
            client.request("PATCH", f"/api/v1/nodes/{shape.name}", shape.patch())
            if not shape.ready:
                self.stop_node(shape.name)

    @classmethod
    def attach(cls, state_dir: Path) -> SimCluster:
        """The cluster recorded in DIR/state.json; SimLaunchError if none runs there."""
        state_dir = Path(state_dir).absolute()
        try:
            data = json.loads((state_dir / STATE_FILE).read_text())
        except FileNotFoundError:
            raise SimLaunchError(f"no simulated cluster was started from {state_dir}") from None
        except (OSError, ValueError) as exc:
            raise SimLaunchError(f"cannot read {state_dir / STATE_FILE}: {exc}") from exc
        cluster = cls(state_dir, data)
        if cluster.control_plane_state() == "stopped":
            return cluster  # stopped on purpose (a fault): `start_control_plane` brings it back
        if not is_ours(cluster._server_pid, CONTROL_PLANE_MODULE, state_dir):
            raise SimLaunchError(
                f"the simulated cluster of {state_dir} is not running "
                f"(API server pid {cluster._server_pid} is gone)"
            )
        return cluster

    # -- queries --------------------------------------------------------------------

    @property
    def server_pid(self) -> int:
        """The API server's pid."""
        return self._server_pid

    def orphaned(self) -> bool:
        """Whether the cluster's owner has ended while the cluster still runs."""
        return self.owner_pid is not None and not alive(self.owner_pid) and self.running()

    def running(self) -> bool:
        """Whether the API server process still runs."""
        return is_ours(self._server_pid, CONTROL_PLANE_MODULE, self.state_dir)

    def node_names(self) -> list[str]:
        """The nodes this launcher runs agents for (control plane first)."""
        names: list[str] = []
        for agent in self._agents.values():
            if agent.hollow:
                count = int(agent.args[agent.args.index("--hollow") + 1])
                names += [f"{agent.name}-{i}" for i in range(count)]
            else:
                names.append(agent.name)
        return names

    def node_address(self, name: str) -> str:
        """The node's InternalIP (a loopback address); hollow nodes included."""
        agent = self._agents.get(name)
        if agent is not None and not agent.hollow:
            return node_address(agent.index, self.slot)
        for group in self._agents.values():
            prefix = f"{group.name}-"
            if group.hollow and name.startswith(prefix) and name[len(prefix) :].isdigit():
                i = int(name[len(prefix) :])
                if i < int(group.args[group.args.index("--hollow") + 1]):
                    return node_address(group.index + i, self.slot)
        return node_address(self._agent(name).index, self.slot)

    def node_state(self, name: str) -> str:
        """`running`, `frozen`, `stopped`, `partitioned`, `kubelet-stopped`, `runtime-stopped`."""
        agent = self._agent(name)
        if agent.state in (
            "running",
            "partitioned",
            "kubelet-stopped",
            "runtime-stopped",
            "frozen",
        ) and not alive(agent.pid):
            return "stopped"
        return agent.state

    def _reload(self) -> None:
        """Take agent and server pids and states from DIR/state.json.

        Another process (the CLI, a machine driver over SSH) may have restarted an agent since
        this object last looked; acting on a stale pid would miss it.
        """
        with contextlib.suppress(OSError, ValueError):
            data = json.loads((self.state_dir / STATE_FILE).read_text())
            server = data.get("server") or {}
            if server.get("pid"):
                self._data["server"] = server
                self._server_pid = int(server["pid"])
            for name, a in data.get("agents", {}).items():
                if name in self._agents:
                    self._agents[name].pid = int(a["pid"])
                    self._agents[name].state = str(a["state"])

    def _agent(self, name: str) -> _Agent:
        self._reload()
        agent = self._agents.get(name)
        if agent is None:
            if name in self.node_names():
                raise ValueError(f"node {name!r} is a hollow node: it has no process of its own")
            known = ", ".join(self.node_names()) or "none"
            raise ValueError(f"unknown node {name!r}; this simulated cluster runs: {known}")
        if agent.hollow:
            raise ValueError(f"{name!r} names a group of hollow nodes, not one node")
        return agent

    # -- node operations --------------------------------------------------------------

    def kill_node(self, name: str) -> None:
        """SIGKILL the node's agent: power loss."""
        agent = self._agent(name)
        self._signal(agent, signal.SIGKILL)
        agent.state = "stopped"
        self._save()

    def stop_node(self, name: str) -> None:
        """Stop the node (SIGKILL, recorded as stopped); `start_node` brings it back."""
        self.kill_node(name)

    def freeze_node(self, name: str) -> None:
        """SIGSTOP the agent: the node hangs (no heartbeats, no traffic)."""
        agent = self._agent(name)
        self._requirealive(agent)
        os.kill(agent.pid, signal.SIGSTOP)
        agent.state = "frozen"
        self._save()

    def thaw_node(self, name: str) -> None:
        """SIGCONT a frozen agent."""
        agent = self._agent(name)
        self._requirealive(agent)
        os.kill(agent.pid, signal.SIGCONT)
        agent.state = "running"
        self._save()

    def start_node(self, name: str) -> None:
        """Start a stopped node's agent again with the same arguments (a kubelet restart)."""
        agent = self._agent(name)
        if alive(agent.pid):
            if agent.state == "frozen":
                os.kill(agent.pid, signal.SIGCONT)
                agent.state = "running"
                self._save()
            return
        with contextlib.suppress(FileNotFoundError):
            Path(agent.socket).unlink()
        agent.pid = self._popen_agent(agent.name, agent.args)
        agent.state = "running"
        self._save()

    def _control(self, name: str, op: str, state: str) -> None:
        agent = self._agent(name)
        self._requirealive(agent)
        control.send(agent.socket, op)
        agent.state = state
        self._save()

    def set_pod_fault(self, name: str, namespace: str, pod: str, mode: str) -> None:
        """Make a pod's server on node `name` fail: `http-500` or `refuse` (its probes fail).

        The fault holds for that pod name on that machine until `clear_pod_fault`, across
        container restarts; ValueError for an unknown mode or node.
        """
        if mode not in control.POD_FAULTS:
            raise ValueError(
                f"unknown pod fault {mode!r}; accepted: {', '.join(control.POD_FAULTS)}"
            )
        agent = self._agent(name)
        self._requirealive(agent)
        control.send(
            agent.socket, "pod-fault", fields={"namespace": namespace, "pod": pod, "mode": mode}
        )

    def pod_faults(self, name: str) -> list[dict[str, str]]:
        """The pod faults set on node `name` (namespace, pod, mode); none when it is stopped."""
        agent = self._agent(name)
        if not alive(agent.pid):
            return []
        state = control.send(agent.socket, "status")
        return list(state.get("podFaults") or [])

    def clear_pod_fault(self, name: str, namespace: str, pod: str) -> None:
        """End a pod fault (a no-op when there is none, or the node's agent is stopped)."""
        agent = self._agent(name)
        if not alive(agent.pid):
            return  # a restarted agent has no faults
        control.send(agent.socket, "clear-pod-fault", fields={"namespace": namespace, "pod": pod})

    def partition_node(self, name: str) -> None:
        """Cut the node off the API server (pods keep serving)."""
        self._control(name, "partition", "partitioned")

    def heal_node(self, name: str) -> None:
        """Undo `partition_node`."""
        self._control(name, "heal", "running")

    def stop_kubelet(self, name: str) -> None:
        """Stop the node's kubelet only (no heartbeats; pods keep running)."""
        self._control(name, "stop-kubelet", "kubelet-stopped")

    def start_kubelet(self, name: str) -> None:
        """Start the kubelet again."""
        self._control(name, "start-kubelet", "running")

    def stop_runtime(self, name: str) -> None:
        """Stop the node's container runtime (pods stop serving; node NotReady)."""
        self._control(name, "stop-runtime", "runtime-stopped")

    def start_runtime(self, name: str) -> None:
        """Start the container runtime again."""
        self._control(name, "start-runtime", "running")

    # -- the control plane ------------------------------------------------------------

    def control_plane_state(self) -> str:
        """`running` or `stopped` (by `stop_control_plane`)."""
        return str(self._data["server"].get("state", "running"))

    def stop_control_plane(self) -> None:
        """SIGKILL the control-plane process (API server, controllers, scheduler).

        Node agents keep running their pods and retry the API server; the store is durable
        (`pytest_k8sdr.sim.apiserver.storage.durable`), so `start_control_plane` resumes
        every object and the resourceVersion counter. The cluster keeps its address slot
        meanwhile, so no other simulated cluster takes its addresses. Idempotent.
        """
        self._reload()
        if self.control_plane_state() == "stopped":
            return
        if is_ours(self._server_pid, CONTROL_PLANE_MODULE, self.state_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._server_pid, signal.SIGKILL)
        wait_gone(self._server_pid, 5.0)
        slot_fd = reclaim_slot(self.slot, 5.0)
        try:
            self._data["server"]["slot_keeper"] = keep_slot(slot_fd, self.state_dir, self.owner_pid)
        finally:
            os.close(slot_fd)
        self._data["server"]["state"] = "stopped"
        self._save()

    def start_control_plane(self, timeout: float = 30.0) -> None:
        """Start the control-plane process again on its store, port and token; idempotent.

        Returns once it answers. Its controllers start afresh: the node lifecycle controller
        gives every node a new grace period from the moment it first sees it.
        """
        self._reload()
        if self.control_plane_state() != "stopped" and self.running():
            return
        args = self._data["server"].get("args")
        if not args:
            raise SimLaunchError(
                f"the cluster of {self.state_dir} was started without restart arguments"
            )
        end_slot_keeper(self._data["server"].pop("slot_keeper", None), self.state_dir)
        slot_fd = reclaim_slot(self.slot, timeout)
        try:
            pid, _ = start_control_plane(
                self.state_dir, [str(a) for a in args], time.monotonic() + timeout, slot_fd
            )
        finally:
            os.close(slot_fd)
        self._server_pid = pid
        self._data["server"]["pid"] = pid
        self._data["server"]["state"] = "running"
        self._save()

    # -- snapshots (etcdctl snapshot save / restore) -----------------------------------

    @property
    def store_dir(self) -> Path:
        """Where the control plane keeps its durable store."""
        args = [str(a) for a in self._data["server"].get("args") or []]
        if "--store-dir" in args[:-1]:
            return Path(args[args.index("--store-dir") + 1])
        return self.state_dir / "store"

    def save_snapshot(self, path: Path) -> tuple[int, int]:
        """Write the running store to `path`, as `etcdctl snapshot save` does; (rv, objects).

        The API server answers one consistent revision; the file is written atomically.
        """
        raw = self._client().read_bytes("/k8sdr/v1/snapshot")
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(raw)
        try:
            rv, objects = read_snapshot(tmp)
        except ValueError as exc:
            tmp.unlink()
            raise SimLaunchError(f"the API server sent a damaged snapshot: {exc}") from exc
        tmp.replace(path)
        return rv, len(objects)

    @staticmethod
    def check_snapshot(path: Path) -> tuple[int, int]:
        """A snapshot file's (resourceVersion, objects); SimLaunchError when it is damaged."""
        try:
            rv, objects = read_snapshot(Path(path))
        except (OSError, ValueError) as exc:
            raise SimLaunchError(f"cannot restore {path}: {exc}") from exc
        return rv, len(objects)

    def restore_snapshot(self, path: Path) -> int:
        """Replace the stopped control plane's store by a snapshot; the resourceVersion it gets.

        As `etcdutl snapshot restore --bump-revision --mark-compacted` and the restart of
        kube-apiserver on it (kubernetes/kubernetes#118501, etcd-io/etcd#16028): the objects
        are the snapshot's, the revision continues above every one clients have seen, and
        every older one is compacted, so each watch gets 410 Gone and its client lists
        afresh. The store is replaced by one rename, so a crash leaves the old or the new.
        A damaged snapshot, or a running control plane, is an error before anything changes.
        """
        try:
            rv, objects = read_snapshot(Path(path))
        except (OSError, ValueError) as exc:
            raise SimLaunchError(f"cannot restore {path}: {exc}") from exc
        self._reload()
        if self.control_plane_state() != "stopped" or self.running():
            raise SimLaunchError("stop the control plane before restoring its store")
        store = self.store_dir
        live_rv, _ = read_store(store)
        restored = max(rv, live_rv) + 1
        store.mkdir(parents=True, exist_ok=True)
        records = (Record(p, ns, name, raw) for (p, ns, name), raw in sorted(objects.items()))
        # Above the log's every record: replay skips them, so this rename is the restore.
        write_snapshot(store / SNAPSHOT, restored, records)
        with contextlib.suppress(FileNotFoundError):
            (store / LOG).unlink()
        return restored

    # -- controllers ----------------------------------------------------------------

    def controllers(self) -> dict[str, bool]:
        """Every switchable controller of the running control plane: name -> running."""
        states: dict[str, bool] = self._client().request("GET", "/k8sdr/v1/controllers")[
            "controllers"
        ]
        return states

    def set_controller(self, name: str, *, enabled: bool) -> bool:
        """Switch a controller on or off while the cluster runs; returns whether it changed.

        As if kube-controller-manager (or kube-scheduler) were restarted with `--controllers`
        listing it or `-NAME`: switched off, it makes no further writes; switched on again, it
        starts from a fresh list. An unknown name is a ValueError naming the accepted ones.
        """
        states = self.controllers()
        if name not in states:
            raise ValueError(f"unknown controller {name!r}; accepted: {', '.join(states)}")
        answer = self._client().request(
            "PUT", f"/k8sdr/v1/controllers/{name}", {"enabled": enabled}
        )
        return bool(answer.get("changed"))

    def advance_clock(self, seconds: float) -> float:
        """Move the controller manager's clock forward; returns its total offset (seconds).

        CronJob schedules are read in that clock, so `advance_clock(60)` runs a `* * * * *`
        CronJob's next Job now instead of within a minute. Nothing else reads it: leases,
        grace periods and timestamps keep the wall clock. A negative step is a ValueError.
        """
        if seconds < 0:
            raise ValueError(f"the clock only moves forward; got {seconds}s")
        answer = self._client().request("POST", "/k8sdr/v1/clock", {"advance": seconds})
        return float(answer["offset"])

    # -- audit ----------------------------------------------------------------------

    def request_counts(self) -> dict[tuple[str, str], int]:
        """Every API request the server has answered: (User-Agent, verb) -> count.

        Verbs as an audit log names them (get, watch, create, update, patch, delete); the
        simulator's own components send User-Agents starting with `k8sdr-sim-`.
        """
        answer = self._client().request("GET", "/k8sdr/v1/requests")
        return {(r["userAgent"], r["verb"]): int(r["count"]) for r in answer["requests"]}

    def _requirealive(self, agent: _Agent) -> None:
        if not alive(agent.pid):
            raise SimLaunchError(f"node {agent.name!r} is stopped (agent pid {agent.pid} is gone)")

    def _signal(self, agent: _Agent, sig: signal.Signals) -> None:
        if is_ours(agent.pid, AGENT_MODULE, self.state_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(agent.pid, sig)
            if sig == signal.SIGKILL:
                wait_gone(agent.pid, 5.0)

    # -- stop -----------------------------------------------------------------------

    def stop(self) -> None:
        """Stop exactly the processes this cluster started (agents, then the server); idempotent."""
        self._reload()
        for agent in self._agents.values():
            if is_ours(agent.pid, AGENT_MODULE, self.state_dir):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(agent.pid, signal.SIGCONT)
                    os.kill(agent.pid, signal.SIGTERM)
        for agent in self._agents.values():
            wait_gone(agent.pid, 5.0)
            agent.state = "stopped"
        if is_ours(self._server_pid, CONTROL_PLANE_MODULE, self.state_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._server_pid, signal.SIGTERM)
        wait_gone(self._server_pid, 5.0)
        end_slot_keeper(self._data["server"].get("slot_keeper"), self.state_dir)
        with contextlib.suppress(OSError):
            (self.state_dir / STATE_FILE).unlink()

    def __enter__(self) -> SimCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals -------------------------------------------------------------------

    def _save(self) -> None:
        self._data["agents"] = {
            a.name: {
                "index": a.index,
                "pid": a.pid,
                "args": a.args,
                "state": a.state,
                "socket": a.socket,
                "hollow": a.hollow,
            }
            for a in self._agents.values()
        }
        path = self.state_dir / STATE_FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self._data, indent=2))
        tmp.replace(path)

    def _spawn_agent(
        self,
        name: str,
        index: int,
        *,
        labels: str = "",
        taints: str = "",
        hollow: int = 0,
        extra: Sequence[str] = (),
    ) -> None:
        sock = str(_socket_path(self.state_dir, name))
        args = [
            "--kubeconfig",
            str(self.kubeconfig_path),
            "--node-name",
            name,
            "--profile",
            self.profile,
            "--control-socket",
            sock,
        ]
        if hollow:
            args += ["--hollow", str(hollow), "--hollow-first-index", str(index)]
            args += ["--address-slot", str(self.slot)]
        else:
            args += [
                "--address",
                node_address(index, self.slot),
                "--pod-cidr",
                node_pod_cidr(index, self.slot),
            ]
        args += _owner_args(self.owner_pid)
        if labels:
            args += ["--node-labels", labels]
        if taints:
            args += ["--register-with-taints", taints]
        args += extra
        pid = self._popen_agent(name, args)
        self._agents[name] = _Agent(name, index, pid, args, "running", sock, bool(hollow))

    def _popen_agent(self, name: str, args: list[str]) -> int:
        log = open(self.state_dir / "agents" / f"{name}.log", "ab")  # noqa: SIM115 - child owns it
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", AGENT_MODULE, *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        CHILDREN[proc.pid] = proc
        return proc.pid

    def wait_nodes_ready(self, names: Sequence[str], timeout: float) -> None:
        """Block until every named Node has Ready=True (list, then watch)."""
        want = set(names)
        missing = [want]

        def done(nodes: Collection[dict[str, Any]]) -> bool:
            ready = {n["metadata"]["name"] for n in nodes if _node_ready(n)}
            if want <= ready:
                return True
            dead = [a.name for a in self._agents.values() if not alive(a.pid)]
            if dead:
                raise SimLaunchError(
                    f"node agent(s) exited before Ready: {', '.join(dead)}; see "
                    f"{self.state_dir / 'agents'}/*.log"
                )
            missing[0] = want - ready
            return False

        if not self._client().wait_until("/api/v1/nodes", done, timeout):
            self._raise_not_ready(missing[0], timeout)

    def _client(self) -> BlockingClient:
        return BlockingClient.from_kubeconfig(self.kubeconfig_path)

    def _raise_not_ready(self, missing: set[str], timeout: float) -> None:
        names = sorted(missing)
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        raise SimLaunchError(
            f"{len(names)} node(s) not Ready within {timeout:.0f}s: {shown}; see "
            f"{self.state_dir / 'agents'}/*.log"
        )


def _restart_args(args: Sequence[str], port: int, token: str) -> list[str]:
    """The control plane's arguments for a restart: the same port and token.

    `--token=VALUE` in one word: a random token may begin with '-', which argparse would take
    for an option.
    """
    out = list(args)
    out[out.index("--port") + 1] = str(port)
    return [*out, f"--token={token}"]


def _owner_args(owner: int | None) -> list[str]:
    return [] if owner is None else ["--owner-pid", str(owner)]


def _node_ready(node: dict[str, Any]) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def _module_exists(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _check_state_dir(state_dir: Path) -> None:
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=state_dir, prefix=".probe"):
            pass
    except OSError as exc:
        raise ValueError(f"state dir {state_dir} is not writable: {exc}") from exc
    state = state_dir / STATE_FILE
    if state.exists():
        try:
            data = json.loads(state.read_text())
            pid = int(data["server"]["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return
        if is_ours(pid, CONTROL_PLANE_MODULE, state_dir):
            raise ValueError(
                f"a simulated cluster is already running from {state_dir} (API server pid {pid}); "
                f"stop it first (`k8sdr sim down --state-dir {state_dir}`)"
            )
