from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest

from pytest_k8sdr import Result, Runbook
from pytest_k8sdr.report import Progress, RunReport, junit_properties, timeline_svg
from pytest_k8sdr.results import report


def finished_runbook() -> Runbook:
    book = Runbook("worker loss", slos={"fail": 30})
    with book.phase("fail") as fail:
        # A check's deciding event, 4 s in: it ends the phase and labels the timeline.
        report(Result(None, fail.started + timedelta(seconds=4), "Unknown"), "node unreachable")
    with book.phase("self-heal"):
        pass
    return book


@pytest.mark.parametrize("since_boot", [0.5, 5.0, 50_000.0])
def test_progress_in_ci_logs_prints_at_most_one_line_per_interval(
    monkeypatch: pytest.MonkeyPatch, since_boot: float
) -> None:
    # The monotonic clock counts from boot: the first line must not wait for it to pass the
    # interval, whatever it reads (a machine up for less than an hour, or a few seconds).
    clock = [since_boot]
    monkeypatch.setattr("pytest_k8sdr.report.time.monotonic", lambda: clock[0])
    out = io.StringIO()
    progress = Progress(out.write, ci_interval=3600)
    for i in range(50):
        progress.update("replicas Ready", i, 6, float(i))
        clock[0] += 1.0
    clock[0] += 3600
    progress.update("replicas Ready", 6, 6, 3650.0)
    progress.done()
    lines = out.getvalue().splitlines()
    assert lines == [
        "k8sdr: waiting for replicas Ready 0/6 (0s)",
        "k8sdr: waiting for replicas Ready 6/6 (3650s)",
    ]


def test_progress_on_a_terminal_rewrites_one_line_and_clears_it() -> None:
    out = io.StringIO()
    progress = Progress(out.write, tty=True)
    progress.update("node Ready", None, None, 1.0)
    progress.update("node Ready", None, None, 2.0)
    progress.done()
    text = out.getvalue()
    assert text.startswith("\nk8sdr: waiting for node Ready (1s)")
    assert "\r\x1b[2Kk8sdr: waiting for node Ready (2s)" in text
    assert text.endswith("\r\x1b[2K")


def test_table_and_junit_properties_name_every_phase_with_its_verdict() -> None:
    book = finished_runbook()
    report = RunReport()
    # Through JSON, as a pytest-xdist worker's report carries it to the controller.
    report.add("experiments/test_x.py::test_worker_loss", json.loads(json.dumps(book.summary())))
    table = report.table()
    assert "test_worker_loss" in table
    assert "4.0s/30s ok" in table
    props = dict(junit_properties(book))
    assert props["k8sdr.phase.fail.seconds"] == "4.000"
    assert props["k8sdr.phase.fail.slo_seconds"] == "30.000"
    assert props["k8sdr.phase.self-heal.verdict"] == "ok"


def test_timeline_svg_is_valid_and_has_a_bar_per_phase() -> None:
    svg = timeline_svg(finished_runbook())
    root = ET.fromstring(svg)
    bars = [e for e in root.iter("{http://www.w3.org/2000/svg}rect") if e.get("class") == "phase"]
    assert len(bars) == 2
    assert "node unreachable (+4.0s)" in svg
