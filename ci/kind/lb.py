"""The external load balancer of the kind CI job: a test workload and an nginx in front of it.

    python ci/kind/lb.py up   [--cluster k8sdr] [--port 8088] [--kubeconfig PATH]
    python ci/kind/lb.py down [--cluster k8sdr]
    python ci/kind/lb.py render-workload            # the manifests `up` applies, as JSON
    python ci/kind/lb.py render-nginx IP:PORT ...    # the nginx.conf `up` writes

`up` applies the test workload (namespace `k8sdr-lb`: a Deployment answering with the pod HTTP
contract of `pytest_k8sdr.workloads`, behind a NodePort Service on the fixed port 30080), waits
for it, reads the workers' InternalIPs and starts an nginx container on kind's docker network
(`kind`) whose `upstream k8sdr_workers` lists every worker's `InternalIP:30080`. nginx listens on
127.0.0.1:PORT of the runner. Its config lives in a bind-mounted directory, not a bind-mounted
file, so the plugin's atomic rewrite (`mv` of a sibling) works through `docker exec`. The
plugin then drives it with::

    --k8sdr-lb=nginx --k8sdr-lb-container=k8sdr-lb --k8sdr-lb-config=/etc/k8sdr/nginx.conf
    --k8sdr-lb-upstream=k8sdr_workers --k8sdr-lb-url=http://127.0.0.1:PORT/

This runs on a hosted CI runner (ci/github-actions.yml), where kind's network is the runner's
own; nothing here is run by the project's test suite except the two `render-*` commands.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_k8sdr.lb.managed import render_config
from pytest_k8sdr.workloads import CONTAINER_PORT, pod_template

NAMESPACE = "k8sdr-lb"
APP = "web"
REPLICAS = 6
NODE_PORT = 30080
UPSTREAM = "k8sdr_workers"
CONTAINER = "k8sdr-lb"
CONFIG_DIR = "/etc/k8sdr"
NGINX_IMAGE = "nginx:1.29-alpine"
DOCKER_NETWORK = "kind"  # the network kind puts its node containers on


def render_nginx(
    servers: Sequence[str],
    *,
    listen: str = "80",
    prefix: str = "/tmp",
    upstream: str = UPSTREAM,
    status_listen: str | None = None,
) -> str:
    """nginx.conf balancing `servers` (each ``IP:PORT``); ValueError names a bad server.

    With `status_listen`, nginx's stub_status answers there too (for a Prometheus exporter).
    """
    if not servers:
        raise ValueError("no servers: the load balancer needs at least one worker address")
    for server in servers:
        host, sep, port = server.rpartition(":")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"server {server!r} is not IP:PORT") from None
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"server {server!r} is not IP:PORT")
    # The same configuration the plugin's managed nginx uses on the simulator: one `server`
    # per line (how the plugin drains), X-Upstream-Addr naming the worker that served.
    return render_config(Path(prefix), upstream, list(servers), listen, status_listen)


def render_workload(replicas: int = REPLICAS, node_port: int = NODE_PORT) -> dict[str, Any]:
    """The namespace, Deployment and NodePort Service of the test workload, as a v1 List."""
    labels = {"app.kubernetes.io/managed-by": "pytest-k8sdr"}
    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": NAMESPACE, "labels": labels},
            },
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": APP, "namespace": NAMESPACE, "labels": {"app": APP}},
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app": APP}},
                    "template": pod_template(APP),
                },
            },
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": APP, "namespace": NAMESPACE},
                "spec": {
                    "type": "NodePort",
                    "selector": {"app": APP},
                    "ports": [
                        {
                            "name": "http",
                            "port": 80,
                            "targetPort": CONTAINER_PORT,
                            "nodePort": node_port,
                        }
                    ],
                },
            },
        ],
    }


# ----------------------------------------------------------------------------- up / down


def _run(argv: Sequence[str], *, stdin: str | None = None) -> str:
    print("+", " ".join(argv), flush=True)
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({done.returncode}): {done.stderr or done.stdout}")
    return done.stdout


def worker_addresses(kubectl: Sequence[str]) -> list[str]:
    """InternalIPs of the nodes without the control-plane role, sorted."""
    nodes = json.loads(_run([*kubectl, "get", "nodes", "-o", "json"]))["items"]
    found = []
    for node in nodes:
        if "node-role.kubernetes.io/control-plane" in node["metadata"].get("labels", {}):
            continue
        for address in node["status"].get("addresses", []):
            if address["type"] == "InternalIP":
                found.append(address["address"])
    if not found:
        raise SystemExit("no worker nodes with an InternalIP: is the kind cluster up?")
    return sorted(found)


def up(args: argparse.Namespace) -> None:
    """Deploy the workload and start nginx in front of the workers' NodePorts."""
    kubectl = ["kubectl", "--context", f"kind-{args.cluster}"]
    if args.kubeconfig:
        kubectl += ["--kubeconfig", args.kubeconfig]
    _run([*kubectl, "apply", "-f", "-"], stdin=json.dumps(render_workload()))
    _run([*kubectl, "-n", NAMESPACE, "rollout", "status", f"deployment/{APP}", "--timeout=300s"])
    servers = [f"{ip}:{NODE_PORT}" for ip in worker_addresses(kubectl)]
    conf_dir = Path(args.config_dir or tempfile.mkdtemp(prefix="k8sdr-lb-"))
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "nginx.conf").write_text(render_nginx(servers, prefix=CONFIG_DIR))
    _run(["docker", "rm", "-f", CONTAINER])
    _run(
        [
            "docker", "run", "-d", "--name", CONTAINER, "--network", DOCKER_NETWORK,
            "-p", f"127.0.0.1:{args.port}:80", "-v", f"{conf_dir}:{CONFIG_DIR}",
            NGINX_IMAGE, "nginx", "-c", f"{CONFIG_DIR}/nginx.conf", "-g", "daemon off;",
        ]
    )  # fmt: skip
    url = f"http://127.0.0.1:{args.port}/"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                print(f"{url} answers: {resp.headers.get('X-K8sdr-Pod')} via "
                      f"{resp.headers.get('X-Upstream-Addr')}")  # fmt: skip
                break
        except (urllib.error.URLError, OSError) as exc:
            if time.monotonic() > deadline:
                logs = _run(["docker", "logs", CONTAINER])
                raise SystemExit(f"{url} does not answer ({exc}); nginx says:\n{logs}") from exc
            time.sleep(1)
    settings = {
        "K8SDR_LB": "nginx",
        "K8SDR_LB_CONTAINER": CONTAINER,
        "K8SDR_LB_CONFIG": f"{CONFIG_DIR}/nginx.conf",
        "K8SDR_LB_UPSTREAM": UPSTREAM,
        "K8SDR_LB_URL": url,
    }
    github_env = os.environ.get("GITHUB_ENV")
    if github_env:
        with open(github_env, "a") as fh:
            fh.writelines(f"{k}={v}\n" for k, v in settings.items())
    for key, value in settings.items():
        print(f"{key}={value}")


def down(args: argparse.Namespace) -> None:
    """Remove the nginx container (the workload goes with the cluster)."""
    subprocess.run(["docker", "rm", "-f", CONTAINER], check=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="deploy the workload and start nginx (CI runner only)")
    p_up.add_argument("--cluster", default="k8sdr")
    p_up.add_argument("--port", type=int, default=8088)
    p_up.add_argument("--kubeconfig")
    p_up.add_argument("--config-dir", help="host directory for nginx.conf (default: a temp dir)")
    p_down = sub.add_parser("down", help="remove the nginx container")
    p_down.add_argument("--cluster", default="k8sdr")
    sub.add_parser("render-workload", help="print the workload manifests (JSON)")
    p_nginx = sub.add_parser("render-nginx", help="print nginx.conf for IP:PORT servers")
    p_nginx.add_argument("servers", nargs="+", metavar="IP:PORT")
    p_nginx.add_argument("--listen", default="80")
    p_nginx.add_argument("--prefix", default=CONFIG_DIR)
    args = parser.parse_args(argv)
    if args.command == "up":
        up(args)
    elif args.command == "down":
        down(args)
    elif args.command == "render-workload":
        print(json.dumps(render_workload(), indent=2))
    else:
        try:
            print(render_nginx(args.servers, listen=args.listen, prefix=args.prefix), end="")
        except ValueError as exc:
            parser.error(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
