"""Bodies shared by the simulator's API-server tests."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config

from pytest_k8sdr.sim.controllers import CONTROLLERS
from pytest_k8sdr.sim.launcher import SimCluster


def pod_body(name: str, **spec: Any) -> dict[str, Any]:
    """A minimal valid Pod."""
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}], **spec},
    }
    return body


def node_body(name: str) -> dict[str, Any]:
    """A Ready Node as a kubelet registers it."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ok"}
            ],
            "addresses": [{"type": "InternalIP", "address": "127.1.0.9"}],
            "capacity": {"cpu": "2", "memory": "8Gi", "pods": "110"},
            "allocatable": {"cpu": "2", "memory": "8Gi", "pods": "110"},
        },
    }


def all_controllers() -> list[str]:
    """Every controller name, so API tests see only what they do themselves."""
    return list(CONTROLLERS)


def make_api_client(cluster: SimCluster, *, retries: bool = True) -> client.ApiClient:
    """An official-client ApiClient configured from the cluster's kubeconfig."""
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(cluster.kubeconfig_path), client_configuration=cfg)
    if not retries:
        cfg.retries = False  # see every 429/500 instead of urllib3's retries
    return client.ApiClient(cfg)


@dataclass(frozen=True)
class Exchange:
    """One raw HTTP answer: status, Warning headers, decoded JSON body."""

    status: int
    warnings: list[str]
    body: Any


def raw_exchange(
    cluster: SimCluster,
    method: str,
    path: str,
    body: Any = None,
    content_type: str = "application/json",
    *,
    data: bytes | None = None,
) -> Exchange:
    """One HTTPS request with the cluster's token (`data`: the body's bytes as they are)."""
    ctx = ssl.create_default_context(cafile=str(cluster.state_dir / "pki" / "ca.crt"))
    if data is None and body is not None:
        data = json.dumps(body).encode()
    req = urllib.request.Request(
        cluster.server_url + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {cluster.token}", "Content-Type": content_type},
    )
    try:
        with urllib.request.urlopen(req, context=ctx) as resp:
            return Exchange(
                resp.status, resp.headers.get_all("Warning") or [], json.loads(resp.read())
            )
    except urllib.error.HTTPError as err:
        return Exchange(err.code, err.headers.get_all("Warning") or [], json.loads(err.read()))
