"""The kubeconfig of a simulated cluster: written by the control plane, read by clients."""

from __future__ import annotations

import base64
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pytest_k8sdr.sim.errors import SimError

__all__ = ["Kubeconfig", "KubeconfigError", "load_kubeconfig", "render", "write"]

JSON = dict[str, Any]

CLUSTER_NAME = "k8sdr"
CONTEXT_NAME = "k8sdr-sim"
USER_NAME = "k8sdr-admin"


def render(server_url: str, ca_pem: bytes, token: str) -> str:
    """The kubeconfig YAML for one server."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CLUSTER_NAME,
                "cluster": {
                    "server": server_url,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": USER_NAME, "user": {"token": token}}],
        "contexts": [
            {
                "name": CONTEXT_NAME,
                "context": {"cluster": CLUSTER_NAME, "user": USER_NAME, "namespace": "default"},
            }
        ],
        "current-context": CONTEXT_NAME,
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def write(path: Path, server_url: str, ca_pem: bytes, token: str) -> Path:
    """Write the kubeconfig atomically, readable by its owner only (it holds the token)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(render(server_url, ca_pem, token))
    tmp.replace(path)
    return path


class KubeconfigError(SimError, ValueError):
    """The kubeconfig is missing or lacks what the agent needs."""


@dataclass(frozen=True)
class Kubeconfig:
    """What the agent needs from a kubeconfig: the server, its CA and a bearer token."""

    server: str
    ca_data: str | None
    token: str | None
    insecure: bool = False

    def ssl_context(self) -> ssl.SSLContext | bool:
        """The TLS settings for aiohttp (`True` = system defaults)."""
        if not self.server.startswith("https"):
            return True
        if self.insecure:
            return False
        if self.ca_data:
            return ssl.create_default_context(cadata=self.ca_data)
        return True


def load_kubeconfig(path: str | Path) -> Kubeconfig:
    """Read the current context's server, CA data and token; KubeconfigError names what is wrong."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise KubeconfigError(f"cannot read kubeconfig {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise KubeconfigError(f"kubeconfig {path} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise KubeconfigError(f"kubeconfig {path} is not a mapping")

    def named(section: str, name: str | None) -> JSON:
        items = doc.get(section) or []
        for item in items:
            if name is None or item.get("name") == name:
                value = item.get(section[:-1]) or {}
                if isinstance(value, dict):
                    return value
        raise KubeconfigError(f"kubeconfig {path}: no {section[:-1]} named {name!r}")

    context_name = doc.get("current-context")
    context = named("contexts", context_name or None)
    cluster = named("clusters", context.get("cluster"))
    user = named("users", context.get("user")) if doc.get("users") else {}
    server = cluster.get("server")
    if not isinstance(server, str) or not server:
        raise KubeconfigError(f"kubeconfig {path}: the cluster has no server")
    ca_data: str | None = None
    if cluster.get("certificate-authority-data"):
        ca_data = base64.b64decode(cluster["certificate-authority-data"]).decode()
    elif cluster.get("certificate-authority"):
        ca_path = path.parent / str(cluster["certificate-authority"])
        try:
            ca_data = ca_path.read_text()
        except OSError as exc:
            raise KubeconfigError(f"kubeconfig {path}: cannot read CA {ca_path}") from exc
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = Path(str(user["tokenFile"])).read_text().strip()
    return Kubeconfig(
        server=server.rstrip("/"),
        ca_data=ca_data,
        token=str(token) if token else None,
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
    )
