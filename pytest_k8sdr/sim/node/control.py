"""The node agent's control socket: the operations it takes and `send(socket_path, op)`.

The agent answers one JSON line per request: `{"ok": true, "state": {...}}` or
`{"ok": false, "error": "..."}`.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from pytest_k8sdr.sim.errors import SimError

__all__ = ["OPS", "POD_FAULTS", "AgentControlError", "send"]

# What `pod-fault` makes a pod's server do: answer 500 to everything, or refuse connections.
POD_FAULTS = ("http-500", "refuse")

OPS = (
    "partition",
    "heal",
    "stop-kubelet",
    "start-kubelet",
    "stop-runtime",
    "start-runtime",
    "status",
    "pod-fault",
    "clear-pod-fault",
)


class AgentControlError(SimError, RuntimeError):
    """The agent could not be reached, or it refused the operation."""


def send(
    socket_path: str | Path,
    op: str,
    *,
    node: str | None = None,
    timeout: float = 10.0,
    fields: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Send `op` to the agent listening on `socket_path`; its state after the operation.

    `node` picks one node of a hollow agent (stop-runtime/start-runtime); `fields` are the
    op's arguments (pod-fault: namespace, pod, mode; clear-pod-fault: namespace, pod). Raises
    AgentControlError naming the socket when it is missing, refused, silent for `timeout`
    seconds, or when the agent answers with an error; ValueError for an unknown op.
    """
    if op not in OPS:
        raise ValueError(f"unknown agent op {op!r}; accepted: {', '.join(OPS)}")
    path = Path(socket_path)
    request: dict[str, Any] = {"op": op, **(fields or {})}
    if node is not None:
        request["node"] = node
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except FileNotFoundError:
            raise AgentControlError(
                f"agent control socket {path} does not exist (agent not started, or exited)"
            ) from None
        except ConnectionRefusedError:
            raise AgentControlError(
                f"agent control socket {path} refused the connection (agent gone?)"
            ) from None
        sock.sendall(json.dumps(request).encode() + b"\n")
        buffer = b""
        while b"\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                raise AgentControlError(f"agent at {path} closed the connection without answering")
            buffer += chunk
    except TimeoutError:
        raise AgentControlError(
            f"agent at {path} did not answer {op!r} within {timeout}s (frozen?)"
        ) from None
    except OSError as exc:
        if isinstance(exc, AgentControlError):
            raise
        raise AgentControlError(f"agent control socket {path}: {exc}") from exc
    finally:
        sock.close()
    try:
        answer = json.loads(buffer.split(b"\n", 1)[0])
    except ValueError as exc:
        raise AgentControlError(
            f"agent at {path} sent a malformed answer: {buffer[:200]!r}"
        ) from exc
    if not isinstance(answer, dict) or not answer.get("ok"):
        error = answer.get("error") if isinstance(answer, dict) else answer
        raise AgentControlError(f"agent at {path} refused {op!r}: {error}")
    state = answer.get("state")
    return state if isinstance(state, dict) else {}
