"""A simulated node: kubelet and kube-proxy stand-ins in one OS process.

    python -m pytest_k8sdr.sim.agent --kubeconfig PATH --node-name NAME --address 127.a.b.c \
        --pod-cidr 127.x.y.0/24 --profile fast|upstream [--node-labels k=v,...]
        [--register-with-taints k=v:NoSchedule,...] [--zone Z] [--control-socket PATH]
        [--hollow N [--hollow-first-index K]] [--pod-start-delay S] [--cpu 2]
        [--memory 8Gi] [--max-pods 110] [--log-level WARNING]

Killing the node is SIGKILL of this process, freezing it SIGSTOP; SIGTERM stops it cleanly
without deleting any pod (a stopping kubelet does not delete pods). Starting it again with the
same name re-registers as a restarted kubelet (see `agent_kubelet`).

The control socket takes JSON lines `{"op": ...}` and answers `{"ok": true, "state": {...}}`:
`partition`/`heal` (all API traffic stops/resumes; pods and NodePorts keep serving with the
last known endpoints), `stop-kubelet`/`start-kubelet` (no heartbeats, pods keep running;
starting again re-registers), `stop-runtime`/`start-runtime` (Ready=False "container runtime
is down", pods stop serving and go not ready), `status`.

Hollow mode (`--hollow N`) runs N kubelets in one process for scale tests: nodes NAME-0..N-1
(or the comma-separated names given), addresses by index as INTERFACE.md lays out. Hollow
pods go through their lifecycle in the API but are not served over sockets, and there is no
kube-proxy. Every kubelet keeps only the pod and Node fields it reads (`slim_pod`,
`slim_node`), and pod sync passes run at most `DEFAULT_PASS_LIMIT` at a time, so a burst of
30,000 pods neither holds 30,000 full objects nor starves the lease renewals.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_k8sdr.sim.agent_kube import (
    JSON,
    ApiClient,
    Gate,
    Kubeconfig,
    KubeconfigError,
    load_kubeconfig,
)
from pytest_k8sdr.sim.agent_kubelet import KubeletHost, NodeSpec
from pytest_k8sdr.sim.agent_net import KubeProxy, Runtime
from pytest_k8sdr.sim.agentctl import OPS
from pytest_k8sdr.sim.profiles import PROFILES, Profile, get_profile

__all__ = ["OPS", "AgentOptions", "main", "node_address", "node_pod_cidr", "parse_args"]

log = logging.getLogger("pytest_k8sdr.sim.agent")

TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
# staging/src/k8s.io/kubelet/pkg/apis/well_known_labels.go: kubernetes.io / k8s.io labels
# a kubelet may set on itself; cmd/kubelet/app/options/options.go refuses others.
KUBELET_ALLOWED_LABELS = {
    "kubernetes.io/hostname",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "node.kubernetes.io/instance-type",
    "beta.kubernetes.io/instance-type",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
}
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


class OptionError(ValueError):
    """A bad command line, reported before anything starts."""


def node_address(index: int, slot: int = 0) -> str:
    """The InternalIP of node `index` of the cluster in address `slot` (INTERFACE.md)."""
    return f"127.{1 + slot}.{index // 250}.{index % 250 + 1}"


def node_pod_cidr(index: int, slot: int = 0) -> str:
    """The podCIDR of node `index` of the cluster in address `slot` (INTERFACE.md)."""
    return f"127.{16 + 4 * slot + index // 256}.{index % 256}.0/24"


def _label_key_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if not name or len(name) > 63 or not _LABEL_NAME.match(name):
        return False
    return not prefix or bool(re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", prefix))


def parse_labels(text: str) -> tuple[tuple[str, str], ...]:
    """`k=v,k2=v2` as the kubelet's --node-labels; OptionError names a bad or forbidden key."""
    labels: list[tuple[str, str]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not _label_key_ok(key) or len(value) > 63 or not _LABEL_NAME.match(value):
            raise OptionError(f"--node-labels: {item!r} is not a valid key=value label")
        prefix = key.rpartition("/")[0]
        namespaced = prefix in ("kubernetes.io", "k8s.io") or prefix.endswith(
            (".kubernetes.io", ".k8s.io")
        )
        if prefix == "node-restriction.kubernetes.io" or prefix.endswith(
            ".node-restriction.kubernetes.io"
        ):
            raise OptionError(
                f"--node-labels: {key!r}: the NodeRestriction admission plugin forbids "
                "node-restriction.kubernetes.io/ labels set by a kubelet"
            )
        if (
            namespaced
            and key not in KUBELET_ALLOWED_LABELS
            and prefix not in ("kubelet.kubernetes.io", "node.kubernetes.io")
            and not prefix.endswith((".kubelet.kubernetes.io", ".node.kubernetes.io"))
        ):
            raise OptionError(
                f"--node-labels: unknown 'kubernetes.io' or 'k8s.io' label {key!r} (a kubelet may "
                "not set it; role labels such as node-role.kubernetes.io/* are applied by an "
                "admin through the API, as kubeadm does)"
            )
        labels.append((key, value))
    return tuple(labels)


def parse_taints(text: str) -> tuple[tuple[str, str, str], ...]:
    """`k=v:Effect,k:Effect` as --register-with-taints; OptionError names a bad entry."""
    taints: list[tuple[str, str, str]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        keyvalue, sep, effect = item.rpartition(":")
        key, _, value = keyvalue.partition("=")
        if not sep or effect not in TAINT_EFFECTS or not _label_key_ok(key):
            raise OptionError(
                f"--register-with-taints: {item!r} is not key[=value]:Effect with Effect one of "
                f"{', '.join(TAINT_EFFECTS)}"
            )
        taints.append((key, value, effect))
    return tuple(taints)


def _loopback(value: str, what: str) -> str:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise OptionError(f"{what}: {value!r} is not an IP address") from None
    if ip.version != 4 or not ip.is_loopback:
        raise OptionError(f"{what}: {value} is not a loopback address (127.0.0.0/8)")
    return value


def _cidr(value: str) -> str:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise OptionError(f"--pod-cidr: {value!r} is not a network: {exc}") from None
    if not isinstance(net, ipaddress.IPv4Network) or not net.subnet_of(
        ipaddress.IPv4Network("127.0.0.0/8")
    ):
        raise OptionError(f"--pod-cidr: {value} is not inside 127.0.0.0/8")
    if net.num_addresses < 4:
        raise OptionError(f"--pod-cidr: {value} is too small for pods")
    return value


class AgentOptions:
    """The validated command line."""

    def __init__(self, ns: argparse.Namespace) -> None:
        self.kubeconfig_path: str = ns.kubeconfig
        self.profile: Profile = get_profile(ns.profile)
        if ns.pod_start_delay is not None:
            if ns.pod_start_delay < 0:
                raise OptionError("--pod-start-delay must be >= 0")
            self.profile = self.profile.replace(pod_start_delay=ns.pod_start_delay)
        self.control_socket: str | None = ns.control_socket
        if ns.control_socket and not Path(ns.control_socket).parent.is_dir():
            raise OptionError(f"--control-socket: directory of {ns.control_socket} does not exist")
        self.hollow: int | None = ns.hollow
        labels = parse_labels(ns.node_labels or "")
        taints = parse_taints(ns.register_with_taints or "")
        if ns.max_pods < 1:
            raise OptionError("--max-pods must be >= 1")
        common: dict[str, Any] = {
            "labels": labels,
            "taints": taints,
            "zone": ns.zone,
            "cpu": ns.cpu,
            "memory": ns.memory,
            "max_pods": ns.max_pods,
        }
        names = [n.strip() for n in ns.node_name.split(",") if n.strip()]
        for name in names:
            if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name) or len(name) > 253:
                raise OptionError(f"--node-name: {name!r} is not a valid DNS subdomain name")
        if ns.hollow is None:
            if len(names) != 1:
                raise OptionError("--node-name: give one name (several only with --hollow)")
            if not ns.address or not ns.pod_cidr:
                raise OptionError("--address and --pod-cidr are required (unless --hollow)")
            self.specs = [
                NodeSpec(
                    names[0],
                    _loopback(ns.address, "--address"),
                    _cidr(ns.pod_cidr),
                    **common,
                )
            ]
        else:
            if ns.hollow < 1:
                raise OptionError("--hollow must be >= 1")
            if len(names) == 1:
                names = [f"{names[0]}-{i}" for i in range(ns.hollow)]
            elif len(names) != ns.hollow:
                raise OptionError(
                    f"--hollow {ns.hollow} with {len(names)} names: give one prefix or N names"
                )
            if ns.hollow_first_index < 0:
                raise OptionError("--hollow-first-index must be >= 0")
            self.specs = [
                NodeSpec(
                    name,
                    node_address(ns.hollow_first_index + i, ns.address_slot),
                    node_pod_cidr(ns.hollow_first_index + i, ns.address_slot),
                    **common,
                )
                for i, name in enumerate(names)
            ]
        self.kubeconfig: Kubeconfig = load_kubeconfig(self.kubeconfig_path)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pytest_k8sdr.sim.agent",
        description="A simulated Kubernetes node (kubelet + kube-proxy stand-in).",
    )
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--node-name", required=True, help="name, or prefix/list with --hollow")
    p.add_argument("--address", help="the node's InternalIP (127.0.0.0/8)")
    p.add_argument("--pod-cidr", help="the node's podCIDR (inside 127.0.0.0/8)")
    p.add_argument("--profile", required=True, choices=sorted(PROFILES))
    p.add_argument("--node-labels", default="")
    p.add_argument("--register-with-taints", default="")
    p.add_argument("--zone", default=None, help="topology.kubernetes.io/zone label")
    p.add_argument("--control-socket", default=None)
    p.add_argument("--hollow", type=int, default=None, metavar="N")
    p.add_argument("--hollow-first-index", type=int, default=1, metavar="K")
    p.add_argument("--address-slot", type=int, default=0, metavar="S")
    p.add_argument("--pod-start-delay", type=float, default=None, help="override the profile's")
    p.add_argument("--cpu", default="2")
    p.add_argument("--memory", default="8Gi")
    p.add_argument("--max-pods", type=int, default=110)
    p.add_argument("--log-level", default="WARNING")
    return p


def parse_args(argv: Sequence[str] | None = None) -> tuple[AgentOptions, str]:
    """Parse and validate; exits with status 2 and a message naming the problem."""
    parser = _parser()
    ns = parser.parse_args(argv)
    try:
        return AgentOptions(ns), ns.log_level
    except (OptionError, KubeconfigError, ValueError) as exc:
        parser.error(str(exc))


class Agent:
    """One agent process: runtimes, kubelets, kube-proxy and the control socket."""

    def __init__(self, options: AgentOptions) -> None:
        self.options = options
        self.profile = options.profile
        self.hollow = options.hollow is not None
        # A request must fail well within the lease duration, so the next renewal still goes out.
        timeout = max(1.0, min(10.0, self.profile.node_lease_duration / 2))
        self.kubelet_gate = Gate()
        self.proxy_gate = Gate()
        self.kubelet_client = ApiClient(
            options.kubeconfig,
            self.kubelet_gate,
            request_timeout=max(timeout, 30.0) if self.hollow else timeout,
            max_connections=64 if self.hollow else 8,
        )
        self.runtimes = {s.name: Runtime(s.name, serve=not self.hollow) for s in options.specs}
        self.host = KubeletHost(
            self.kubelet_client, self.profile, options.specs, self.runtimes, hollow=self.hollow
        )
        self.proxy: KubeProxy | None = None
        self.proxy_client: ApiClient | None = None
        if not self.hollow:
            spec = options.specs[0]
            self.proxy_client = ApiClient(
                options.kubeconfig, self.proxy_gate, request_timeout=timeout
            )
            self.proxy = KubeProxy(self.proxy_client, spec.name, spec.address)
        self.partitioned = False
        self._stopping = asyncio.Event()
        self._control: asyncio.Server | None = None

    async def run(self) -> None:
        """Run until SIGTERM/SIGINT."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        if self.options.control_socket:
            path = Path(self.options.control_socket)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            self._control = await asyncio.start_unix_server(self._serve_control, str(path))
        if self.proxy is not None:
            await self.proxy.start()
        self.host.start()
        try:
            await self._stopping.wait()
        finally:
            await self.shutdown()

    async def shutdown(self) -> None:
        """Stop cleanly: no pod is deleted, listeners close, the socket goes away."""
        if self._control is not None:
            self._control.close()
            with contextlib.suppress(FileNotFoundError):
                Path(self.options.control_socket or "").unlink()
        await self.host.stop()
        if self.proxy is not None:
            await self.proxy.stop()
        for runtime in self.runtimes.values():
            await runtime.stop_all()
        await self.kubelet_client.close()
        if self.proxy_client is not None:
            await self.proxy_client.close()

    # control

    async def control(self, op: str, node: str | None = None) -> JSON:
        """Apply one control operation; ValueError for an unknown op or node."""
        if op not in OPS:
            raise ValueError(f"unknown op {op!r}; accepted: {', '.join(OPS)}")
        if node is not None and node not in self.runtimes:
            raise ValueError(f"unknown node {node!r} in this agent")
        if op == "partition":
            self.partitioned = True
            self.kubelet_gate.close()
            self.proxy_gate.close()
        elif op == "heal":
            self.partitioned = False
            self.proxy_gate.open()
            self.kubelet_gate.open()
        elif op == "stop-kubelet":
            if self.host.running:
                await self.host.stop()
        elif op == "start-kubelet":
            if not self.host.running:
                self.host.start()
        elif op in ("stop-runtime", "start-runtime"):
            up = op == "start-runtime"
            targets = [node] if node else list(self.runtimes)
            for name in targets:
                runtime = self.runtimes[name]
                if runtime.up != up:
                    runtime.up = up
                    if not up:
                        await runtime.stop_all()
                    kubelet = self.host.kubelets.get(name)
                    if kubelet is not None and self.host.running:
                        kubelet.runtime_changed()
        return self.state()

    def state(self) -> JSON:
        """What the agent is doing, for the launcher and for tests."""
        nodes = []
        for spec in self.options.specs:
            kubelet = self.host.kubelets.get(spec.name)
            runtime = self.runtimes[spec.name]
            nodes.append(
                {
                    "name": spec.name,
                    "address": spec.address,
                    "podCIDR": spec.pod_cidr,
                    "registered": bool(kubelet and kubelet.registered),
                    "nodeUID": kubelet.node_uid if kubelet else None,
                    "nodeKnown": bool(kubelet and kubelet.node is not None),
                    "ready": kubelet.ready_condition()[0] == "True" if kubelet else False,
                    "leaseRenewals": kubelet.lease_renewals if kubelet else 0,
                    "pods": len(kubelet.pods()) if kubelet else 0,
                    "runningPods": len(runtime.pods),
                    "runtime": "running" if runtime.up else "stopped",
                }
            )
        state: JSON = {
            "pid": os.getpid(),
            "hollow": self.hollow,
            "partitioned": self.partitioned,
            "kubelet": "running" if self.host.running else "stopped",
            "runtime": "running" if all(r.up for r in self.runtimes.values()) else "stopped",
            "kubeProxySynced": bool(self.proxy and self.proxy.synced),
            "nodes": nodes,
        }
        if not self.hollow:
            state.update({k: v for k, v in nodes[0].items() if k not in ("runtime",)})
            state["node"] = nodes[0]["name"]
        return state

    async def _serve_control(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while line := await reader.readline():
                if not line.strip():
                    continue
                try:
                    request = json.loads(line)
                    if not isinstance(request, dict):
                        raise ValueError("a request is a JSON object with an 'op'")
                    answer: JSON = {
                        "ok": True,
                        "state": await self.control(str(request.get("op")), request.get("node")),
                    }
                except ValueError as exc:
                    answer = {"ok": False, "error": str(exc)}
                except Exception as exc:
                    log.exception("control request failed")
                    answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m pytest_k8sdr.sim.agent`."""
    options, level = parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.WARNING),
        format=f"%(asctime)s agent[{options.specs[0].name}] %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    asyncio.run(Agent(options).run())


if __name__ == "__main__":
    main()
