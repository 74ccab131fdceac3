"""Helpers of the node agent tests: agent processes, watch-driven waits, HTTP probes."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, watch

from pytest_k8sdr.sim.node import control


def _process_block() -> int:
    """0..39, distinct for each pytest-xdist worker (gw0, gw1, ...), else from the pid."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        return int(worker[2:]) % 40
    return os.getpid() % 40


# Node indexes far from the launcher's (0..N), distinct per pytest process.
INDEX = itertools.count(2000 + _process_block() * 150)
_NODE_PORT = itertools.count(30000 + _process_block() * 60)


@dataclass
class Server:
    state_dir: Path
    kubeconfig: Path
    proc: subprocess.Popen[bytes]
    core: client.CoreV1Api
    coord: client.CoordinationV1Api
    discovery: client.DiscoveryV1Api


@dataclass
class AgentProc:
    """One agent process and what it was started with."""

    name: str
    address: str
    pod_cidr: str
    socket: Path
    argv: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    history: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, extra: list[str] | None = None) -> AgentProc:
        """Start (or restart) the process with the same name and addresses."""
        assert self.proc is None or self.proc.poll() is not None, "agent already running"
        self.socket.unlink(missing_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.argv + (extra or []), stdout=log, stderr=log)
        log.close()
        self.history.append(self.proc)
        deadline = time.monotonic() + 15
        while not self.socket.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"agent {self.name} did not start: {self.log()}")
            time.sleep(0.02)
        return self

    def ctl(self, op: str) -> dict[str, Any]:
        """Send a control op."""
        return control.send(self.socket, op)

    def kill(self) -> None:
        """SIGKILL, as a power loss."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        """SIGTERM, as stopping the kubelet cleanly; the exit status."""
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_for(
    list_fn: Callable[..., Any],
    predicate: Callable[[Any], bool],
    *,
    timeout: float = 10.0,
    what: str = "condition",
    **list_kwargs: Any,
) -> Any:
    """The first object (from a list, then a watch) that satisfies `predicate`."""
    listing = list_fn(**list_kwargs)
    for item in listing.items:
        if predicate(item):
            return item
    deadline = time.monotonic() + timeout
    last: Any = listing.items
    rv = listing.metadata.resource_version
    while time.monotonic() < deadline:
        w = watch.Watch()
        remaining = max(1, int(deadline - time.monotonic()) + 1)
        for event in w.stream(
            list_fn, resource_version=rv, timeout_seconds=remaining, **list_kwargs
        ):
            last = event["object"]
            rv = last.metadata.resource_version
            if event["type"] != "DELETED" and predicate(last):
                w.stop()
                return last
            if time.monotonic() > deadline:
                w.stop()
                break
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {last}")


def wait_gone(list_fn: Callable[..., Any], name: str, *, timeout: float = 10.0, **kw: Any) -> None:
    """Return once the object named `name` is gone (a DELETED event, or absent from a list)."""
    selector = f"metadata.name={name}"
    listing = list_fn(field_selector=selector, **kw)
    if not listing.items:
        return
    w = watch.Watch()
    for event in w.stream(
        list_fn,
        field_selector=selector,
        resource_version=listing.metadata.resource_version,
        timeout_seconds=int(timeout) + 1,
        **kw,
    ):
        if event["type"] == "DELETED":
            w.stop()
            return
    raise AssertionError(f"{name} still present after {timeout}s")


def is_ready(node: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def pod_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def http_get(url: str, timeout: float = 2.0) -> tuple[int, dict[str, str], Any]:
    """(status, headers, decoded JSON body) of a GET; raises OSError when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"null")


def make_pod(
    name: str,
    node: str,
    *,
    port: int = 8080,
    grace: int = 5,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}, "annotations": annotations or {}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": grace,
            "containers": [{"name": "web", "image": "sim", "ports": [{"containerPort": port}]}],
        },
    }


def next_node_port() -> int:
    return next(_NODE_PORT)


# The official client sends JSON bodies without a Content-Type header; say it explicitly so
# these tests do not depend on how the server reads a header-less body.
JSON_HEADERS = {"Content-Type": "application/json"}


def create_pod(server: Server, body: dict[str, Any]) -> Any:
    return server.core.create_namespaced_pod("default", body, _headers=dict(JSON_HEADERS))


def delete_pod(server: Server, name: str) -> Any:
    return server.core.delete_namespaced_pod(name, "default", _headers=dict(JSON_HEADERS))


def not_serving(url: str) -> bool:
    """Whether a GET on `url` is refused, reset or unanswered (nothing serves there)."""
    try:
        http_get(url, timeout=1)
    except OSError:
        return True
    return False
