"""Phase figures in the JUnit XML, valid for the junit_family in force, with no warning."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

INNER = """
def test_worker_loss(runbook):
    with runbook.phase("fail", slo="30s"):
        pass
    with runbook.phase("self-heal"):
        pass
"""


def _run(pytester: pytest.Pytester, *family: str) -> ET.Element:
    pytester.makepyfile(test_inner=INNER)
    junit = pytester.path / "junit.xml"
    # -W error: a project that turns warnings into errors must not fail on ours.
    result = pytester.runpytest_subprocess("-W", "error", f"--junitxml={junit}", *family)
    result.assert_outcomes(passed=1)
    assert "record_property is incompatible" not in result.stdout.str()
    return ET.parse(junit).getroot()


@pytest.mark.parametrize("family", [(), ("-o", "junit_family=xunit2")])
def test_xunit2_gets_the_figures_as_testsuite_properties(
    pytester: pytest.Pytester, family: tuple[str, ...]
) -> None:
    root = _run(pytester, *family)
    # xunit2 allows no properties on a testcase.
    assert [case.find("properties") for case in root.iter("testcase")] == [None]
    suite = root.find("testsuite")
    assert suite is not None
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    prefix = "k8sdr.test_inner.py::test_worker_loss.phase"
    assert props[f"{prefix}.fail.slo_seconds"] == "30.000"
    assert props[f"{prefix}.fail.verdict"] == "ok"
    assert props[f"{prefix}.self-heal.verdict"] == "ok"
    assert float(props[f"{prefix}.self-heal.seconds"] or "nan") >= 0


@pytest.mark.parametrize("family", ["xunit1", "legacy"])
def test_xunit1_gets_the_figures_on_the_testcase(pytester: pytest.Pytester, family: str) -> None:
    root = _run(pytester, "-o", f"junit_family={family}")
    (case,) = root.iter("testcase")
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["k8sdr.phase.fail.verdict"] == "ok"
    assert props["k8sdr.phase.fail.slo_seconds"] == "30.000"
    suite = root.find("testsuite")
    assert suite is not None
    assert suite.find("properties") is None


TRAFFIC = """
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pytest_k8sdr.lb import TrafficProbe


class Answer(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("X-K8sdr-Node", "w1")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def test_with_traffic(runbook, k8sdr_recorder):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    probe = TrafficProbe(f"http://127.0.0.1:{server.server_address[1]}/", rate=50)
    k8sdr_recorder.add_probe(probe)
    with probe, runbook.phase("drain LB"):
        for _ in range(3):
            probe.wait_for_record(timeout=5)
    server.shutdown()
    server.server_close()
"""


def _run_traffic(pytester: pytest.Pytester, *args: str) -> ET.Element:
    pytester.makepyfile(test_inner=TRAFFIC)
    junit = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess("-W", "error", f"--junitxml={junit}", *args)
    result.assert_outcomes(passed=1)
    return ET.parse(junit).getroot()


def _traffic(props: dict[str | None, str | None], prefix: str) -> None:
    assert int(props[f"{prefix}.requests"] or 0) >= 3
    assert props[f"{prefix}.errors"] == "0"
    assert props[f"{prefix}.share.w1"] == "1.0000"
    assert props[f"{prefix}.to_drained_or_dead_nodes"] == "0"
    assert float(props[f"{prefix}.latency_p99_ms"] or "nan") > 0
    assert f"{prefix}.error_window.seconds" not in props  # no error, no window


@pytest.mark.parametrize("family", ["xunit2", "xunit1"])
def test_traffic_figures_reach_junit_and_the_report_directory(
    pytester: pytest.Pytester, family: str
) -> None:
    import json

    reports = pytester.path / "reports"
    root = _run_traffic(pytester, "-o", f"junit_family={family}", f"--k8sdr-report-dir={reports}")
    if family == "xunit2":
        suite = root.find("testsuite")
        assert suite is not None
        props = {p.get("name"): p.get("value") for p in suite.iter("property")}
        _traffic(props, "k8sdr.test_inner.py::test_with_traffic.traffic")
    else:
        (case,) = root.iter("testcase")
        _traffic({p.get("name"): p.get("value") for p in case.iter("property")}, "k8sdr.traffic")
    summary = json.loads((reports / "k8sdr-summary.json").read_text())
    (experiment,) = summary["experiments"]
    (traffic,) = experiment["traffic"]
    assert traffic["share_by_node"] == {"w1": 1.0}
    assert sum(s["requests"] for s in traffic["per_second"]) == traffic["requests"]
    (timeline,) = reports.glob("*.timeline.json")
    assert json.loads(timeline.read_text())["traffic"] == experiment["traffic"]
