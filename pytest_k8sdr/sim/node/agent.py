"""A simulated node: kubelet and kube-proxy stand-ins in one OS process.

Run as `python -m pytest_k8sdr.sim.node ...` (`options` lists the command line). Killing the
node is SIGKILL of this process, freezing it SIGSTOP; SIGTERM stops it cleanly without
deleting any pod (a stopping kubelet does not delete pods). Starting it again with the same
name re-registers as a restarted kubelet (see `registration`).

The control socket (`control`) takes JSON lines `{"op": ...}` and answers
`{"ok": true, "state": {...}}`: `partition`/`heal` (all API traffic stops/resumes; pods and
NodePorts keep serving with the last known endpoints), `stop-kubelet`/`start-kubelet` (no
heartbeats, pods keep running; starting again re-registers), `stop-runtime`/`start-runtime`
(Ready=False "container runtime is down", pods stop serving and go not ready),
`pod-fault` (`namespace`, `pod`, `mode`: the pod's server answers 500 or refuses connections,
so its probes fail; see `runtime`), `clear-pod-fault` (`namespace`, `pod`), `status`.
Hollow mode is described in `hollow`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.client.rest import ApiClient, Gate
from pytest_k8sdr.sim.node.control import OPS
from pytest_k8sdr.sim.node.hollow import KubeletHost
from pytest_k8sdr.sim.node.options import AgentOptions, parse_args
from pytest_k8sdr.sim.node.proxy import KubeProxy
from pytest_k8sdr.sim.node.runtime import Runtime
from pytest_k8sdr.sim.processes import watch_owner

__all__ = ["Agent", "main"]

log = logging.getLogger("pytest_k8sdr.sim.node")


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
        if self.options.owner_pid is not None:
            # The node ends with the process that owns its cluster (see sim.processes).
            watch_owner(self.options.owner_pid, self._stopping.set)
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

    async def control(self, op: str, node: str | None = None, fields: JSON | None = None) -> JSON:
        """Apply one control operation; ValueError for an unknown op, node or argument."""
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
        elif op in ("pod-fault", "clear-pod-fault"):
            await self._pod_fault(op, node, fields or {})
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

    async def _pod_fault(self, op: str, node: str | None, fields: JSON) -> None:
        namespace, pod = fields.get("namespace"), fields.get("pod")
        if not isinstance(namespace, str) or not namespace or not isinstance(pod, str) or not pod:
            raise ValueError(f"{op} needs a 'namespace' and a 'pod'")
        runtime = self.runtimes[node or self.options.specs[0].name]
        if op == "clear-pod-fault":
            await runtime.clear_fault(namespace, pod)
        else:
            await runtime.set_fault(namespace, pod, str(fields.get("mode") or ""))

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
                    "podFaults": [
                        {"namespace": ns, "pod": pod, "mode": mode}
                        for (ns, pod), mode in sorted(runtime.faults.items())
                    ],
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
                        "state": await self.control(
                            str(request.get("op")), request.get("node"), request
                        ),
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
    """Entry point of `python -m pytest_k8sdr.sim.node`."""
    options, level = parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.WARNING),
        format=f"%(asctime)s agent[{options.specs[0].name}] %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    asyncio.run(Agent(options).run())
