"""A real Prometheus (Debian's) scrapes the simulated pods and nginx through its exporter.

The session's `prometheus` fixture: on the simulator a managed Prometheus on a free loopback
port, its pods discovered by the plugin (file_sd), a managed nginx scraped through Debian's
`prometheus-nginx-exporter`. `assert_promql` reads it and puts its values on the timeline.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
import urllib.request
from collections.abc import Iterator
from typing import ClassVar

import pytest

from pytest_k8sdr import (
    ConfigError,
    MakeWorkload,
    Prometheus,
    PrometheusError,
    Runbook,
    WaitTimeout,
    assert_promql,
)
from pytest_k8sdr.config import PrometheusAuth


def test_pods_are_scraped_and_the_values_go_on_the_timeline(
    prometheus: Prometheus, make_workload: MakeWorkload, runbook: Runbook
) -> None:
    web = make_workload("web", replicas=2)
    for pod in web.pods():
        for _ in range(5):
            with urllib.request.urlopen(f"http://{pod.ip}:{web.port}/", timeout=2) as resp:
                assert resp.status == 200
    query = f'sum(http_requests_total{{namespace="{web.namespace}",code="200"}})'
    with runbook.phase("self-heal"):
        result = assert_promql(prometheus, query, above=9.5, timeout=30, name="served")
    assert result.value[0].value == 10.0
    # Each pod is its own target, labelled as Kubernetes' service discovery would.
    up = prometheus.query(f'up{{job="pods",namespace="{web.namespace}"}}')
    assert {s.labels["pod"] for s in up} == {p.name for p in web.pods()}
    assert all(s.value == 1.0 for s in up)
    # Every value read is a point of the series on the timeline.
    timeline = json.loads(runbook.to_json())
    (series,) = [s for s in timeline["series"] if s["name"] == "served"]
    assert series["points"][-1]["value"] == 10.0
    assert all(p["t"] >= 0 for p in series["points"])
    assert "served held" in [m["label"] for m in timeline["timeline"]]


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

    def do_GET(self) -> None:
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


@pytest.fixture
def auth_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Auth)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Auth.seen = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_credentials_are_sent_and_a_refusal_names_the_variables(auth_server: str) -> None:
    assert Prometheus(auth_server, PrometheusAuth(token="tok")).query("x")[0].value == 2.0
    basic = Prometheus(auth_server, PrometheusAuth(username="ops", password="pw"))
    assert basic.query("x")[0].value == 2.0
    assert _Auth.seen == ["Bearer tok", "Basic " + base64.b64encode(b"ops:pw").decode()]
    with pytest.raises(PrometheusError, match=r"refused the credentials.*K8SDR_PROMETHEUS_TOKEN"):
        Prometheus(auth_server, PrometheusAuth(token="wrong")).query("x")
    assert "tok" not in repr(PrometheusAuth(token="tok"))
