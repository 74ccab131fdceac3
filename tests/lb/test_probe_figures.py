"""A probe's figures for the reports: per second, error window, requests to outage nodes."""

from __future__ import annotations

import pytest

from pytest_k8sdr.lb.probe import Outage, ProbeRecord, per_second, traffic_figures, went_to


def _rec(
    wall: float,
    *,
    node: str | None = "n1",
    error: str | None = None,
    latency: float = 0.01,
    upstream: str | None = None,
) -> ProbeRecord:
    status = 502 if error == "HTTP 502" else (None if error else 200)
    return ProbeRecord(
        wall, wall, latency, status, error, node if not error else None, None, upstream
    )


RECORDS = [
    _rec(100.0, node="n1", latency=0.010),
    _rec(100.5, node="n2", latency=0.030),
    _rec(101.2, error="HTTP 502", upstream="127.0.1.2:30080"),
    _rec(101.4, node="n2", upstream="127.0.1.2:30080, 127.0.1.3:30080"),  # retried away from n1
    _rec(103.1, error="timeout", latency=2.0),
    _rec(103.5, node="n1"),  # answered by n1 while it was drained
    _rec(104.0, node="n2"),
]


def test_per_second_has_every_second_with_its_counts_latency_and_nodes() -> None:
    seconds = per_second(RECORDS)
    assert [s["t"] for s in seconds] == [100, 101, 102, 103, 104]
    first, second, quiet, third, _ = seconds
    assert (first["requests"], first["errors"], first["by_node"]) == (2, 0, {"n1": 1, "n2": 1})
    assert (first["latency_p50_ms"], first["latency_p99_ms"]) == (10.0, 30.0)
    assert second["errors_by_kind"] == {"HTTP 502": 1}
    # A second with no request is there, with zero: a probe outage is not a gap in the chart.
    assert (quiet["requests"], quiet["latency_p50_ms"]) == (0, None)
    assert third["errors_by_kind"] == {"timeout": 1}
    assert per_second([]) == []


def test_went_to_is_the_answering_node_or_an_address_tried_during_the_outage() -> None:
    dead = Outage("n1", "kill", since=101.0, until=103.0, address="127.0.1.2")
    assert went_to(RECORDS[2], dead)  # failed on n1's address
    assert went_to(RECORDS[3], dead)  # tried n1 first, answered by n2
    assert not went_to(RECORDS[0], dead)  # answered by n1, but before it died
    assert not went_to(RECORDS[5], dead)  # after it came back
    assert not went_to(RECORDS[4], Outage("n1", "kill", 101.0, None, None))  # no address known


def test_figures_total_share_error_window_and_strays() -> None:
    outages = [
        Outage("n1", "kill", since=101.0, until=102.0, address="127.0.1.2"),
        Outage("n1", "drained", since=103.2, until=None, address="127.0.1.2"),
    ]
    figures = traffic_figures("http://127.0.0.1:8080/", RECORDS, outages)
    assert (figures["requests"], figures["errors"]) == (7, 2)
    assert figures["errors_by_kind"] == {"HTTP 502": 1, "timeout": 1}
    assert figures["share_by_node"] == {"n1": 0.4, "n2": 0.6}
    # From the first failed request's send to the last one's failure.
    assert figures["error_window"] == {"start": 101.2, "end": 105.1, "seconds": pytest.approx(3.9)}
    assert figures["to_outage_nodes"] == 3
    assert figures["to_outage_nodes_by_node"] == {"n1": 3}
    assert len(figures["per_second"]) == 5  # type: ignore[arg-type]
    clean = traffic_figures("http://x/", RECORDS[:2])
    assert (clean["error_window"], clean["to_outage_nodes"]) == (None, 0)
