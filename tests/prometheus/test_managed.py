"""A real Prometheus (Debian's) scrapes the simulated pods and nginx through its exporter.

The session's `prometheus` fixture: on the simulator a managed Prometheus on a free loopback
port, its pods discovered by the plugin (file_sd), a managed nginx scraped through Debian's
`prometheus-nginx-exporter`. `assert_promql` reads it and puts its values on the timeline.
"""

from __future__ import annotations

import base64
import gc
import http.server
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from pytest_k8sdr import (
    ConfigError,
    MakeLB,
    MakeWorkload,
    Prometheus,
    PrometheusError,
    Runbook,
    WaitTimeout,
    assert_promql,
)
from pytest_k8sdr.config import PrometheusAuth
from pytest_k8sdr.prometheus.managed import wait_http


def _post(url: str) -> None:
    request = urllib.request.Request(url, data=b"{}", method="POST")
    with urllib.request.urlopen(request, timeout=2) as resp:
        assert resp.status == 200


def test_pods_are_scraped_and_the_values_go_on_the_timeline(
    prometheus: Prometheus, make_workload: MakeWorkload, runbook: Runbook
) -> None:
    web = make_workload("web", replicas=2)
    first, second = sorted(web.pods(), key=lambda p: p.name)
    # The kubelet's readiness probes GET the pods all along; only the test POSTs, so the POST
    # counters are exactly what the test sent, to each target apart.
    sent = {first.name: 3, second.name: 7}
    for pod in (first, second):
        for _ in range(sent[pod.name]):
            _post(f"http://{pod.ip}:{web.port}/")
    posts = f'http_requests_total{{namespace="{web.namespace}",method="POST",code="200"}}'
    with runbook.phase("self-heal"):
        result = assert_promql(prometheus, f"sum({posts})", above=9.5, timeout=30, name="posts")
    assert result.value[0].value == 10.0
    by_pod = {s.labels["pod"]: s.value for s in prometheus.query(f"sum by (pod) ({posts})")}
    assert by_pod == {first.name: 3.0, second.name: 7.0}
    # Each pod is its own target, labelled as Kubernetes' service discovery would.
    up = prometheus.query(f'up{{job="pods",namespace="{web.namespace}"}}')
    assert {s.labels["pod"] for s in up} == {first.name, second.name}
    assert all(s.value == 1.0 for s in up)
    # Every value read is a point of the series on the timeline.
    timeline = json.loads(runbook.to_json())
    (series,) = [s for s in timeline["series"] if s["name"] == "posts"]
    assert series["points"][-1]["value"] == 10.0
    assert all(p["t"] >= 0 for p in series["points"])
    assert "posts held" in [m["label"] for m in timeline["timeline"]]


def test_a_managed_nginx_is_scraped_through_the_exporter(
    prometheus: Prometheus, make_workload: MakeWorkload, make_lb: MakeLB
) -> None:
    web = make_workload("web", replicas=2)
    front = make_lb(web)
    for _ in range(5):
        with urllib.request.urlopen(front.url, timeout=2) as resp:
            assert resp.status == 200
    where = f'job="nginx",namespace="{web.namespace}",lb="web"'
    # stub_status counts every request nginx took, the exporter's own reads of it included.
    assert_promql(prometheus, f"sum(nginx_http_requests_total{{{where}}})", above=4.5, timeout=30)
    (up,) = prometheus.query(f"nginx_up{{{where}}}")
    assert up.value == 1.0


def test_a_query_that_does_not_hold_times_out_saying_what_it_read(
    prometheus: Prometheus,
) -> None:
    with pytest.raises(WaitTimeout, match=r"(?s)'vector\(5\)' to stay < 1.*value = 5"):
        assert_promql(prometheus, "vector(5)", below=1, timeout=1.5, interval=0.5)
    # No data is no evidence: an empty answer never holds.
    with pytest.raises(WaitTimeout, match="no data"):
        assert_promql(prometheus, 'up{job="no-such-job"}', below=10, timeout=1, interval=0.5)
    assert_promql(prometheus, "vector(5)", above=4, below=6, for_=1, interval=0.5, timeout=10)


def test_a_bad_query_is_a_tool_error_naming_it(prometheus: Prometheus) -> None:
    with pytest.raises(PrometheusError, match=r"bad_data.*query 'sum\(\('"):
        prometheus.query("sum((")
    with pytest.raises(PrometheusError, match="range vector needs a function"):
        prometheus.query("up[1m]")
    with pytest.raises(ConfigError, match="below=, above= or both"):
        assert_promql(prometheus, "vector(1)")


class _Auth(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[str | None]] = []
    ready: ClassVar[int] = 0

    def do_GET(self) -> None:
        if self.path == "/-/ready":
            type(self).ready += 1
            self.send_response(503 if type(self).ready <= 2 else 200)  # not ready yet, twice
            self.end_headers()
            return
        type(self).seen.append(self.headers.get("Authorization"))
        if self.headers.get("Authorization") in (None, "Bearer wrong"):
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps(
            {"status": "success", "data": {"resultType": "scalar", "result": [1.5, "2"]}}
        )
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    """Counts the connections it has closed on its side (after each answer)."""

    closed = 0
    changed = threading.Condition()

    def shutdown_request(self, request: object) -> None:
        super().shutdown_request(request)  # type: ignore[arg-type]
        with self.changed:
            self.closed += 1
            self.changed.notify_all()


@pytest.fixture
def auth_server() -> Iterator[_Server]:
    server = _Server(("127.0.0.1", 0), _Auth)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Auth.seen, _Auth.ready = [], 0
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _url(server: _Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def _left_open(server: _Server, answered: int) -> int:
    """Our connections to `server` it closed and we did not (CLOSE_WAIT), once it answered all."""
    with server.changed:
        assert server.changed.wait_for(lambda: server.closed >= answered, timeout=10)
    port = server.server_address[1]
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[2].split(":")[1], 16) == port and fields[3] == "08":  # CLOSE_WAIT
            count += 1
    return count


def test_error_answers_give_their_connection_back(auth_server: _Server) -> None:
    # gc off: an HTTPError kept in a traceback's cycle would otherwise close at random times.
    gc.disable()
    try:
        with pytest.raises(PrometheusError, match="refused the credentials"):
            Prometheus(_url(auth_server), PrometheusAuth(token="wrong")).query("x")
        assert _left_open(auth_server, 1) == 0
        # Waiting for a server: its 503s before it is ready are closed as they come.
        wait_http(f"{_url(auth_server)}/-/ready", 30, "the test server", lambda: True)
        assert _left_open(auth_server, 4) == 0
    finally:
        gc.enable()


def test_credentials_are_sent_and_a_refusal_names_the_variables(auth_server: _Server) -> None:
    url = _url(auth_server)
    assert Prometheus(url, PrometheusAuth(token="tok")).query("x")[0].value == 2.0
    basic = Prometheus(url, PrometheusAuth(username="ops", password="pw"))
    assert basic.query("x")[0].value == 2.0
    assert _Auth.seen == ["Bearer tok", "Basic " + base64.b64encode(b"ops:pw").decode()]
    with pytest.raises(PrometheusError, match=r"refused the credentials.*K8SDR_PROMETHEUS_TOKEN"):
        Prometheus(url, PrometheusAuth(token="wrong")).query("x")
    assert "tok" not in repr(PrometheusAuth(token="tok"))
