"""One probe of a container, as the kubelet's prober runs it (pkg/kubelet/prober/prober.go).

httpGet (pkg/probe/http/http.go): a GET of the pod's server; 200 <= status < 400 is success,
another status "HTTP probe failed with statuscode: N", a transport error its Go text
(`Get "URL": dial tcp ADDR: connect: connection refused`). tcpSocket (pkg/probe/tcp/tcp.go):
a connection is success, else `dial tcp ADDR: connect: connection refused` or `... i/o
timeout`. grpc is probed as tcpSocket: the simulated server speaks no gRPC health protocol.

exec runs no command: its outcome is the pod annotation `sim.k8sdr.io/exec-probe`, `success`
(the default) or `failure` for every exec probe of the pod, or per probe type, e.g.
`readiness=failure,liveness=success`. Changing the annotation changes the next probes.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from dataclasses import dataclass

import aiohttp

from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.node.runtime import probe_port
from pytest_k8sdr.sim.node.slim import EXEC_PROBE_ANNOTATION

__all__ = ["EXEC_PROBE_ANNOTATION", "ProbeResult", "Result", "exec_outcome", "run_probe"]

# The User-Agent of the kubelet's HTTP probes (pkg/probe/http/request.go).
USER_AGENT = "kube-probe/1.31"


class Result(enum.Enum):
    """pkg/probe: Success, Failure, Unknown (the probe could not be run)."""

    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ProbeResult:
    """A probe's result and its output (the message of a failure)."""

    result: Result
    output: str = ""


def exec_outcome(annotations: JSON, probe_type: str) -> ProbeResult:
    """The outcome of an exec probe of `probe_type` (readiness|liveness|startup)."""
    text = str(annotations.get(EXEC_PROBE_ANNOTATION) or "success").strip()
    wanted = text
    if "=" in text:
        per_type = dict(
            part.strip().split("=", 1) for part in text.split(",") if "=" in part.strip()
        )
        wanted = per_type.get(probe_type, "success").strip()
    if wanted == "failure":
        # A failing command's output is what it printed; the simulated one prints nothing.
        return ProbeResult(Result.FAILURE, "")
    if wanted != "success":
        return ProbeResult(
            Result.UNKNOWN, f"{EXEC_PROBE_ANNOTATION}: {wanted!r} is neither success nor failure"
        )
    return ProbeResult(Result.SUCCESS)


async def run_probe(
    probe: JSON,
    container: JSON,
    pod_ip: str,
    annotations: JSON,
    probe_type: str,
    session: aiohttp.ClientSession,
) -> ProbeResult:
    """Run `probe` of `container` once against the pod's server at `pod_ip`."""
    timeout = float(probe.get("timeoutSeconds") or 1)
    if probe.get("exec") is not None:
        return exec_outcome(annotations, probe_type)
    port = probe_port(container, probe)
    if port is None:
        handler = probe.get("httpGet") or probe.get("tcpSocket") or probe.get("grpc") or {}
        if not handler:
            return ProbeResult(Result.UNKNOWN, "missing probe handler")
        return ProbeResult(Result.UNKNOWN, f"unable to find port {handler.get('port')!r}")
    if probe.get("httpGet") is not None:
        return await _http(probe["httpGet"], pod_ip, port, timeout, session)
    return await _tcp(str((probe.get("tcpSocket") or {}).get("host") or pod_ip), port, timeout)


async def _http(
    get: JSON, pod_ip: str, port: int, timeout: float, session: aiohttp.ClientSession
) -> ProbeResult:
    host = str(get.get("host") or pod_ip)
    scheme = str(get.get("scheme") or "HTTP").lower()
    path = str(get.get("path") or "/")
    if not path.startswith("/"):
        path = "/" + path
    url = f"{scheme}://{host}:{port}{path}"
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    for h in get.get("httpHeaders") or []:
        if h.get("name"):
            headers[str(h["name"])] = str(h.get("value", ""))
    try:
        async with session.get(
            url,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
            ssl=False,  # the kubelet does not verify a probe's certificate
        ) as response:
            await response.read()
            status = response.status
    except TimeoutError:
        return ProbeResult(
            Result.FAILURE,
            f'Get "{url}": context deadline exceeded '
            "(Client.Timeout exceeded while awaiting headers)",
        )
    except aiohttp.ClientConnectorError:
        return ProbeResult(
            Result.FAILURE, f'Get "{url}": dial tcp {host}:{port}: connect: connection refused'
        )
    except aiohttp.ClientError as exc:
        return ProbeResult(Result.FAILURE, f'Get "{url}": {exc}')
    if 200 <= status < 400:
        return ProbeResult(Result.SUCCESS)
    return ProbeResult(Result.FAILURE, f"HTTP probe failed with statuscode: {status}")


async def _tcp(host: str, port: int, timeout: float) -> ProbeResult:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        return ProbeResult(Result.FAILURE, f"dial tcp {host}:{port}: i/o timeout")
    except OSError:
        return ProbeResult(Result.FAILURE, f"dial tcp {host}:{port}: connect: connection refused")
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return ProbeResult(Result.SUCCESS)
