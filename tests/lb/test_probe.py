"""TrafficProbe: steady rate, honest records, summaries."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from lb_helpers import Cluster

from pytest_k8sdr.lb import LBConfigError, ProbeRecord, TrafficProbe, summarize


def _rec(t: float, *, ok: bool = True, node: str = "n1", latency: float = 0.01) -> ProbeRecord:
    if ok:
        return ProbeRecord(t, t, latency, 200, None, node, f"default/web-{node}")
    return ProbeRecord(t, t, latency, 502, "HTTP 502", None, None)


def test_summary_figures() -> None:
    records = [
        _rec(0.0),
        _rec(0.1, node="n2"),
        _rec(0.2, ok=False, latency=0.05),
        _rec(0.3, node="n2"),
        _rec(0.5, ok=False, latency=0.05),  # 0.25s after the last failure ended: same window
        _rec(3.0, ok=False, latency=0.1),  # a second window
        _rec(3.1),
        _rec(9.0),  # outside [0, 5)
    ]
    s = summarize(records, 0.0, 5.0, merge_gap=1.0)
    assert s.requests == 7
    assert s.errors == 3
    assert s.error_rate == pytest.approx(3 / 7)
    assert [(w.start, round(w.end, 6), w.errors) for w in s.error_windows] == [
        (0.2, 0.55, 2),
        (3.0, 3.1, 1),
    ]
    assert s.longest_error_window == pytest.approx(0.35)
    assert s.per_node == {"n1": 2, "n2": 2}
    assert s.per_node_share == {"n1": 0.5, "n2": 0.5}
    assert s.per_pod == {"default/web-n1": 2, "default/web-n2": 2}
    assert s.errors_by_kind == {"HTTP 502": 3}
    assert "7 requests in 5.0s, 3 failed (42.9%)" in s.describe()

    empty = summarize([], 0.0, 1.0)
    assert (empty.error_rate, empty.longest_error_window, empty.per_node_share) == (0.0, 0.0, {})
    assert empty.latency_p50 is None


def test_steady_rate_and_who_answered(cluster: Cluster) -> None:
    node = cluster.nodes[0]
    with TrafficProbe(f"http://{node.address}:{node.port}/", rate=100) as probe:
        start = probe.now()
        assert probe.wait_settled(start + 1.0, timeout=5.0)
        summary = probe.summary(start, start + 1.0)
    # Open loop at 100/s: one request every 10ms, whatever the answers take.
    assert 90 <= summary.requests <= 110, summary.describe()
    assert summary.errors == 0
    assert summary.per_node == {"node-1": summary.requests}
    assert summary.per_pod == {"default/web-node-1": summary.requests}
    assert summary.latency_p99 is not None
    assert summary.latency_p99 < 0.5
    assert not probe.running
    count = len(probe.records())
    probe.stop()  # idempotent
    assert len(probe.records()) == count


class _JsonOnly(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"pod": "db-0", "namespace": "prod", "node": "kind-worker2"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib name)
        pass


@pytest.fixture
def json_only() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.88.0.9", 0), _JsonOnly)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.88.0.9:{server.server_address[1]}/any?x=1"
    server.shutdown()
    server.server_close()


def test_identity_from_the_json_body(json_only: str) -> None:
    with TrafficProbe(json_only, rate=50) as probe:
        probe.wait_for_record(timeout=5.0)
    record = probe.records()[0]
    assert (record.status, record.node, record.pod) == (200, "kind-worker2", "prod/db-0")


def test_refused_and_silent_servers_are_failures() -> None:
    with socket.socket() as silent:
        silent.bind(("127.88.0.9", 0))
        silent.listen(64)  # accepts connections (kernel backlog) but never answers
        port = silent.getsockname()[1]
        with TrafficProbe(f"http://127.88.0.9:{port}/", rate=20, timeout=0.2) as probe:
            start = probe.now()
            assert probe.wait_settled(start + 0.3, timeout=5.0)
    silent_errors = probe.summary(start, start + 0.3).errors_by_kind
    assert set(silent_errors) == {"timeout"}
    assert all(r.latency >= 0.2 for r in probe.records() if r.error == "timeout")

    # The port is closed now: connections are refused.
    with TrafficProbe(f"http://127.88.0.9:{port}/", rate=50) as probe:
        probe.wait_for_record(timeout=5.0)
    refused = probe.records()[0]
    assert (refused.ok, refused.status, refused.error) == (False, None, "ConnectionRefusedError")


def test_bad_settings_are_refused() -> None:
    with pytest.raises(LBConfigError, match="http://"):
        TrafficProbe("https://127.0.0.1/")
    with pytest.raises(LBConfigError, match="rate"):
        TrafficProbe("http://127.0.0.1/", rate=0)
    with pytest.raises(LBConfigError, match="timeout"):
        TrafficProbe("http://127.0.0.1/", timeout=-1)


def _running(probe: TrafficProbe) -> bool:
    return probe.running  # read anew (mypy keeps `probe.running` narrowed after an assert)


def test_start_and_stop_from_several_threads(cluster: Cluster) -> None:
    node = cluster.nodes[1]
    probe = TrafficProbe(f"http://{node.address}:{node.port}/", rate=200)
    starters = [threading.Thread(target=probe.start) for _ in range(4)]
    for t in starters:
        t.start()
    for t in starters:
        t.join()
    assert probe.running, "started by four threads at once"
    seen: list[int] = []
    readers = [
        threading.Thread(target=lambda: seen.append(probe.summary().requests)) for _ in range(4)
    ]
    probe.wait_for_record(timeout=5.0)
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    stoppers = [threading.Thread(target=probe.stop) for _ in range(4)]
    for t in stoppers:
        t.start()
    for t in stoppers:
        t.join()
    assert not _running(probe)
    assert len(seen) == 4
    assert all(n >= 1 for n in seen)
    # The probe runs once: a second start is a fresh run appended to the same records.
    before = len(probe.records())
    with probe:
        probe.wait_for_record(timeout=5.0)
    assert len(probe.records()) > before
