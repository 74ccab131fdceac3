"""ci/kind/lb.py: what the kind CI job puts in front of the workers, tried here on loopback.

The nginx configuration it writes is loaded by a real nginx on loopback and drained by the
plugin's own `NginxLB`, as the experiments will do on the runner through `docker exec`; the test
workload it applies is applied with kubectl to the simulator and answered on its fixed NodePort.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from pytest_k8sdr.lb.managed import ManagedNginx
from pytest_k8sdr.lb.nginx import NginxLB
from pytest_k8sdr.processes import free_port
from pytest_k8sdr.sim.launcher import SimCluster

ROOT = Path(__file__).resolve().parents[2]
LB_SCRIPT = ROOT / "ci" / "kind" / "lb.py"
KUBECTL = shutil.which("kubectl")
NGINX = shutil.which("nginx")


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ci_kind_lb", LB_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lb = _load()


@pytest.mark.parametrize("bad", ["kind-worker:30080", "172.18.0.3", "172.18.0.3:0", "1.2.3:80"])
def test_render_nginx_names_a_bad_server(bad: str) -> None:
    with pytest.raises(ValueError, match="is not IP:PORT") as info:
        lb.render_nginx(["172.18.0.2:30080", bad])
    assert repr(bad) in str(info.value)


def test_render_nginx_needs_a_server() -> None:
    with pytest.raises(ValueError, match="at least one worker"):
        lb.render_nginx([])


def test_the_command_line_renders_and_refuses() -> None:
    ok = subprocess.run(
        [sys.executable, str(LB_SCRIPT), "render-nginx", "172.18.0.3:30080", "172.18.0.4:30080"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert f"upstream {lb.UPSTREAM} {{" in ok.stdout
    assert ok.stdout.count("server 172.18.0.") == 2
    bad = subprocess.run(
        [sys.executable, str(LB_SCRIPT), "render-nginx", "kind-worker:30080"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert "'kind-worker:30080' is not IP:PORT" in bad.stderr


@pytest.fixture
def backends() -> Iterator[dict[str, str]]:
    """Two loopback "workers" answering like a NodePort, on the same port as kind's would."""
    port = free_port("127.0.0.1")
    names = {"w1": "127.83.0.1", "w2": "127.83.0.2"}
    script = (
        "import http.server,sys\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.send_header('X-K8sdr-Node', sys.argv[2])\n"
        "        self.send_header('Content-Length', '2'); self.end_headers()\n"
        "        self.wfile.write(b'ok')\n"
        "    def log_message(self,*a): pass\n"
        "http.server.HTTPServer((sys.argv[1], int(sys.argv[3])), H).serve_forever()\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, ip, name, str(port)])
        for name, ip in names.items()
    ]
    try:
        for ip in names.values():
            _wait_listening(ip, port)
        yield {name: f"{ip}:{port}" for name, ip in names.items()}
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


def _free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def _wait_listening(host: str, port: int, timeout: float = 10.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _served_by(url: str, n: int) -> set[str]:
    host, port = url.split("//", 1)[1].rstrip("/").rsplit(":", 1)
    seen = set()
    for _ in range(n):
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        conn.request("GET", "/")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
        seen.add(resp.getheader("X-K8sdr-Node") or "?")
        conn.close()
    return seen


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (ci/setup installs it)")
def test_the_rendered_nginx_balances_and_the_plugin_drains_it(
    tmp_path: Path, backends: dict[str, str]
) -> None:
    listen_port = free_port("127.83.0.9")
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        lb.render_nginx(
            list(backends.values()), listen=f"127.83.0.9:{listen_port}", prefix=tmp_path
        )
    )
    command = ("nginx", "-e", str(tmp_path / "error.log"))
    proc = subprocess.Popen(
        [*command, "-c", str(conf), "-g", "daemon off;"], stderr=subprocess.DEVNULL
    )
    try:
        _wait_listening("127.83.0.9", listen_port)
        url = f"http://127.83.0.9:{listen_port}/"
        assert _served_by(url, 8) == {"w1", "w2"}
        nodes = {name: server.split(":")[0] for name, server in backends.items()}
        nginx_lb = NginxLB(lb.UPSTREAM, config=str(conf), nodes=nodes, nginx=command)
        nginx_lb.validate()
        nginx_lb.drain("w1")
        time.sleep(0.5)  # nginx's old worker finishes its connections after a reload
        assert _served_by(url, 8) == {"w2"}
        nginx_lb.restore("w1")
        assert "#k8sdr-drained#" not in conf.read_text()
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_config_is_the_managed_lbs(tmp_path: Path) -> None:
    # One nginx configuration for the simulator's managed LB and the kind job's container.
    if NGINX is None:
        pytest.skip("nginx is not installed")
    managed = ManagedNginx(tmp_path, {"w1": "127.83.0.1:30080"}, upstream=lb.UPSTREAM)
    status = managed.status_url.removeprefix("http://").removesuffix("/stub_status")
    ours = lb.render_nginx(
        ["127.83.0.1:30080"], listen=managed.url[7:-1], prefix=tmp_path, status_listen=status
    )
    assert ours == managed.config.read_text()


def test_the_workload_manifest_shape() -> None:
    items = lb.render_workload()["items"]
    kinds = [i["kind"] for i in items]
    assert kinds == ["Namespace", "Deployment", "Service"]
    deployment, service = items[1], items[2]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert 30000 <= port["nodePort"] <= 32767  # the default NodePort range
    assert port["nodePort"] == lb.NODE_PORT


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_kubectl_applies_the_workload_and_its_node_port_answers(tmp_path: Path) -> None:
    sim = SimCluster.start(tmp_path / "sim", workers=2)
    try:
        kubectl = [str(KUBECTL), "--kubeconfig", str(sim.kubeconfig_path)]
        addresses = sorted(sim.node_address(n) for n in ("k8sdr-worker", "k8sdr-worker2"))
        # A NodePort free on both workers' addresses right now (other simulated clusters on
        # this machine may use loopback ports too).
        node_port = next(p for p in range(31000, 32767) if all(_free(a, p) for a in addresses))
        manifest = json.dumps(lb.render_workload(replicas=2, node_port=node_port))
        # The simulator serves no OpenAPI document for kubectl's client-side validation.
        applied = subprocess.run(
            [*kubectl, "apply", "--validate=false", "-f", "-"],
            input=manifest,
            capture_output=True,
            text=True,
        )
        assert applied.returncode == 0, applied.stderr
        rolled = subprocess.run(
            [*kubectl, "-n", lb.NAMESPACE, "rollout", "status", "deployment/web", "--timeout=60s"],
            capture_output=True,
            text=True,
        )
        assert rolled.returncode == 0, rolled.stderr
        # The workers lb.py would put behind nginx: not the control plane.
        workers = lb.worker_addresses(kubectl)
        assert workers == addresses
        service = json.loads(
            subprocess.run(
                [*kubectl, "-n", lb.NAMESPACE, "get", "service", lb.APP, "-o", "json"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        assert service["spec"]["ports"][0]["nodePort"] == node_port
        slices = json.loads(
            subprocess.run(
                [*kubectl, "-n", lb.NAMESPACE, "get", "endpointslices", "-o", "json"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        endpoints = {
            address
            for s in slices["items"]
            for ep in s.get("endpoints") or []
            if (ep.get("conditions") or {}).get("ready")
            for address in ep["addresses"]
        }
        assert len(endpoints) == 2
        _wait_listening(workers[0], node_port)
        conn = http.client.HTTPConnection(workers[0], node_port, timeout=5)
        conn.request("GET", "/")
        resp = conn.getresponse()
        body = json.loads(resp.read())
        conn.close()
        assert resp.status == 200
        # The NodePort forwarded to one of the Service's ready endpoints: the address is what
        # is checked, as a simulated cluster sharing this machine could answer behind it.
        assert body["podIP"] in endpoints
        if body["namespace"] == lb.NAMESPACE:
            assert body["pod"].startswith(f"{lb.APP}-")
    finally:
        sim.stop()
