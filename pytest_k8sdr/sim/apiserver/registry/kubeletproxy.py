"""pods/log, exec, attach and portforward: what upstream proxies to the node's kubelet.

The API server finds the kubelet's location as pkg/registry/core/pod/strategy.go does
(LogLocation, ExecLocation, PortForwardLocation): the container must be one of the pod's
(or named when there are several) and the pod must have a host. Upstream then proxies to the
kubelet (`https://<hostIP>:10250/containerLogs/...`). The simulated kubelet runs no
containers, so at that point the simulator answers a 400 BadRequest naming the kubelet URL
and why, which kubectl prints at once (`Error from server (BadRequest): ...`), rather than
a 404 or a hang. Not modelled: logs, exec, attach, cp and port-forward themselves.
"""

from __future__ import annotations

from collections.abc import Mapping

from pytest_k8sdr.sim.apimachinery.errors import ApiError, bad_request
from pytest_k8sdr.sim.apimachinery.types import JSON

__all__ = ["KUBELET_SUBRESOURCES", "kubelet_refusal"]

# subresource -> the kubelet's handler path (pkg/kubelet/server/server.go).
KUBELET_SUBRESOURCES = {
    "log": "containerLogs",
    "exec": "exec",
    "attach": "attach",
    "portforward": "portForward",
}


def _container(pod: JSON, sub: str, query: Mapping[str, str]) -> str | None:
    """The container the request is about, checked as strategy.go's *Location functions do."""
    name = pod["metadata"]["name"]
    spec = pod.get("spec") or {}
    if sub == "portforward":
        return None
    wanted = query.get("container", "")
    containers = [c.get("name", "") for c in spec.get("containers") or []]
    every = [
        *containers,
        *(c.get("name", "") for c in spec.get("initContainers") or []),
        *(c.get("name", "") for c in spec.get("ephemeralContainers") or []),
    ]
    if not wanted:
        if len(containers) == 1:
            return str(containers[0])
        raise bad_request(
            f"a container name must be specified for pod {name}, "
            f"choose one of: [{' '.join(containers)}]"
        )
    if wanted not in every:
        raise bad_request(f"container {wanted} is not valid for pod {name}")
    return wanted


def kubelet_refusal(pod: JSON, sub: str, query: Mapping[str, str]) -> ApiError:
    """The error for a kubelet-proxied request on `pod` (raised by the caller)."""
    meta = pod["metadata"]
    container = _container(pod, sub, query)
    node = (pod.get("spec") or {}).get("nodeName")
    if not node:
        return bad_request(f"pod {meta['name']} does not have a host assigned")
    host = (pod.get("status") or {}).get("hostIP") or node
    path = "/".join(p for p in (meta["namespace"], meta["name"], container) if p)
    url = f"https://{host}:10250/{KUBELET_SUBRESOURCES[sub]}/{path}"
    return bad_request(
        f'the simulated kubelet of node "{node}" runs no containers: pods/{sub} ({url}) is not '
        "served by the simulator (kubectl logs, exec, attach, cp and port-forward need a real "
        "container runtime)"
    )
