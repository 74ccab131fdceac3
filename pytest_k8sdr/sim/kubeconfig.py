"""The kubeconfig clients use to reach the simulated cluster (CA data + bearer token)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import yaml

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
