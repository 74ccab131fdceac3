"""The allure report end to end: raw results, the rendered HTML, and the page in Chromium.

A child pytest runs the load-balancer experiment under traffic
(experiments/test_load_balancer.py) on the embedded simulator with `--alluredir`, beside two
tiny runbooks that fail (an SLO missed, the tool broken) so that the allure categories have
something to sort; the allure command-line tool renders the results; headless Chromium opens
the experiment's page served on 127.0.0.1. The tools come from `bash ci/setup` (allure into
.node/, chromium from APT); a missing one fails the test, it never skips.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import shutil
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from report_browser import (
    ROOT,
    TEST_NAME,
    decode_png,
    find_chromium,
    run_chromium,
    run_experiment,
)

# Explicit SLOs make the step titles exact whatever the profile's defaults become.
SLOS = {"fail": 30, "drain LB": 30}
STEP_TITLES = [f"phase {phase} (SLO {slo}s)" for phase, slo in SLOS.items()]
OK_GREEN = (0x4C, 0xAF, 0x50)  # report.timeline_svg's colour of a phase that met its SLO
# Failures of both kinds, for the categories: cheap, they touch no cluster.
FAILING_RUNBOOKS = """
import time

from pytest_k8sdr.errors import ToolError


def test_phase_misses_its_slo(runbook):
    with runbook.phase("slow", slo=0.05):
        time.sleep(0.2)


def test_tool_breaks(runbook):
    with runbook.phase("inject"):
        raise ToolError("the fault driver broke")
"""
SETUP_HINT = "run `bash ci/setup` (it installs allure-commandline into .node/ and chromium)"

# ---------------------------------------------------------------------------------------------
# tools


def chromium_command() -> str:
    found = find_chromium()
    if found is None:
        pytest.fail(f"headless Chromium is missing: {SETUP_HINT}")
    return found


def allure_command() -> str:
    local = ROOT / ".node" / "node_modules" / ".bin" / "allure"
    found = str(local) if local.exists() else shutil.which("allure")
    if found is None:
        pytest.fail(f"the allure command-line tool is missing: {SETUP_HINT}")
    if shutil.which("java") is None:
        pytest.fail("allure needs Java 17 on PATH (`bash ci/setup` warns when it is missing)")
    return found


# ---------------------------------------------------------------------------------------------
# fixtures: one child run, one rendered report, one server for the whole module


@dataclass
class Report:
    results: Path
    html: Path
    base_url: str
    scratch: Path


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Report]:
    allure = allure_command()
    chromium_command()  # fail before the long child run when a tool is missing
    scratch = tmp_path_factory.mktemp("allure")
    results, html = scratch / "results", scratch / "html"
    failing = scratch / "test_failing_runbooks.py"
    failing.write_text(FAILING_RUNBOOKS)
    child = run_experiment(
        scratch,
        str(failing),
        "--alluredir",
        str(results),
        "--k8sdr-slos=" + ",".join(f"{p}={s}s" for p, s in SLOS.items()),
    )
    summary = child.stdout.strip().splitlines()[-1] if child.stdout.strip() else ""
    assert child.returncode == pytest.ExitCode.TESTS_FAILED, child.stdout + child.stderr
    assert re.search(r"\b2 failed, 1 passed\b", summary), child.stdout + child.stderr
    generate = subprocess.run(
        [allure, "generate", str(results), "-o", str(html), "--clean"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert generate.returncode == 0, generate.stdout + generate.stderr
    handler = functools.partial(QuietHandler, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="allure-report-http", daemon=True)
    thread.start()
    try:
        yield Report(results, html, f"http://127.0.0.1:{server.server_address[1]}", scratch)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        """Keep the request log out of the test output."""


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def attachments_of(node: dict[str, Any]) -> list[dict[str, Any]]:
    """Attachments of a result or stage and of all its nested steps."""
    found = list(node.get("attachments", []))
    for step in node.get("steps", []):
        found += attachments_of(step)
    return found


def raw_result(results: Path, name: str = TEST_NAME) -> dict[str, Any]:
    matches = [r for r in map(load, results.glob("*-result.json")) if r.get("name") == name]
    assert len(matches) == 1, [p.name for p in results.iterdir()]
    result: dict[str, Any] = matches[0]
    return result


def rendered_case(html: Path) -> dict[str, Any]:
    cases = [c for c in map(load, (html / "data" / "test-cases").glob("*.json"))]
    matches = [c for c in cases if c.get("name") == TEST_NAME]
    assert len(matches) == 1, [c.get("name") for c in cases]
    case: dict[str, Any] = matches[0]
    return case


def rendered_attachment(case: dict[str, Any], name: str) -> dict[str, Any]:
    stages = [*case.get("beforeStages", []), case["testStage"], *case.get("afterStages", [])]
    found = [a for stage in stages for a in attachments_of(stage) if a["name"] == name]
    assert len(found) == 1, f"{name} attached {len(found)} times"
    return found[0]


# ---------------------------------------------------------------------------------------------
# 1. the raw allure results


def test_raw_result_has_a_step_per_phase_and_the_timeline_attached(report: Report) -> None:
    result = raw_result(report.results)
    assert result["status"] == "passed"
    assert [s["name"] for s in result["steps"]] == STEP_TITLES
    assert all(s["status"] == "passed" for s in result["steps"])
    for before, after in zip(result["steps"], result["steps"][1:], strict=False):
        assert before["start"] <= before["stop"] <= after["start"] <= after["stop"]

    # Attached to the test's own body (after its call), not to a fixture's teardown.
    attached = list(result.get("attachments", []))
    for container in map(load, report.results.glob("*-container.json")):
        if result["uuid"] in container.get("children", []):
            for stage in container.get("befores", []) + container.get("afters", []):
                assert not attachments_of(stage), stage["name"]
    by_name = {a["name"]: a for a in attached}
    assert {"timeline.json", "timeline.svg"} <= by_name.keys(), sorted(by_name)
    assert by_name["timeline.json"]["type"] == "application/json"
    assert by_name["timeline.svg"]["type"] == "image/svg+xml"

    timeline = load(report.results / by_name["timeline.json"]["source"])
    assert [p["phase"] for p in timeline["phases"]] == list(SLOS)
    assert [p["verdict"] for p in timeline["phases"]] == ["ok"] * len(SLOS)
    svg = (report.results / by_name["timeline.svg"]["source"]).read_text()
    assert svg.startswith("<svg")
    assert svg.count('<rect class="phase"') == len(SLOS)


def test_raw_result_carries_the_recorders_events_traffic_and_the_chart(report: Report) -> None:
    by_name = {a["name"]: a for a in raw_result(report.results).get("attachments", [])}
    types = {name: by_name[name]["type"] for name in by_name}
    assert types == {
        "timeline.json": "application/json",
        "timeline.svg": "image/svg+xml",
        "events.json": "application/json",
        "traffic.json": "application/json",
        "chart.svg": "image/svg+xml",
        "k8sdr-report.html": "text/html",
    }, types

    events = load(report.results / by_name["events.json"]["source"])
    (traffic,) = load(report.results / by_name["traffic.json"]["source"])
    (drained,) = [o for o in traffic["outages"] if o["why"] == "drained"]
    victim = drained["node"]
    lanes = {e["lane"] for e in events}
    assert {"faults", "lb", "nodes", "pods", "endpoints"} <= lanes, lanes
    labels = [e["label"] for e in events]
    assert any(victim in label for label in labels if label.startswith("LB reloaded: drain"))
    assert f"{victim} Ready=Unknown" in labels, labels
    assert traffic["requests"] > 0
    assert traffic["per_second"]
    assert victim in traffic["share_by_node"]

    chart = (report.results / by_name["chart.svg"]["source"]).read_text()
    assert chart.startswith("<svg")
    for lane in ("faults", "lb", "nodes", f"requests-{victim}", "errors", "latency"):
        assert f'data-lane="{lane}"' in chart, lane
    assert chart.count('<rect class="phase"') == len(SLOS)
    page = (report.results / by_name["k8sdr-report.html"]["source"]).read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count('<tr class="experiment">') == 1
    assert f'data-lane="requests-{victim}"' in page


def test_raw_results_of_failing_runbooks_name_the_phase(report: Report) -> None:
    slow = raw_result(report.results, "test_phase_misses_its_slo")
    assert slow["status"] == "failed"
    assert [(s["name"], s["status"]) for s in slow["steps"]] == [
        ("phase slow (SLO 0.05s)", "failed")
    ]
    assert "exceeded its SLO" in slow["statusDetails"]["message"]
    broken = raw_result(report.results, "test_tool_breaks")
    assert broken["status"] == "broken"
    assert [(s["name"], s["status"]) for s in broken["steps"]] == [("phase inject", "broken")]


def test_environment_and_categories_are_written(report: Report) -> None:
    lines = (report.results / "environment.properties").read_text().splitlines()
    facts = dict(line.split("=", 1) for line in lines if line)
    assert facts.get("backend") == "sim", facts
    assert facts.get("profile") == "fast", facts
    names = [c["name"] for c in load(report.results / "categories.json")]
    assert {"SLO exceeded", "The tool failed"} <= set(names), names


# ---------------------------------------------------------------------------------------------
# 2. the rendered HTML report


def test_rendered_report_keeps_phases_environment_and_categories(report: Report) -> None:
    assert (report.html / "index.html").is_file()
    case = rendered_case(report.html)
    assert case["status"] == "passed"
    assert [s["name"] for s in case["testStage"]["steps"]] == STEP_TITLES
    svg = rendered_attachment(case, "timeline.svg")
    assert (report.html / "data" / "attachments" / svg["source"]).is_file()
    environment = load(report.html / "widgets" / "environment.json")
    assert {"name": "backend", "values": ["sim"]} in environment, environment
    # The tree is category > message > test.
    categories = {
        c["name"]: sorted(t["name"] for message in c["children"] for t in message["children"])
        for c in load(report.html / "data" / "categories.json")["children"]
    }
    assert categories == {
        "SLO exceeded": ["test_phase_misses_its_slo"],
        "The tool failed": ["test_tool_breaks"],
    }, categories


# ---------------------------------------------------------------------------------------------
# 3. the report in a browser


def test_served_svg_attachment_draws_every_phase(report: Report) -> None:
    svg = rendered_attachment(rendered_case(report.html), "timeline.svg")
    url = f"{report.base_url}/data/attachments/{svg['source']}"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        body = response.read().decode()
    assert "<svg" in body
    rects = re.findall(r'<rect class="phase"[^>]*><title>([^<]*)</title>', body)
    assert [title.split(":")[0] for title in rects] == list(SLOS), rects


def test_test_page_shows_the_phase_steps_and_the_timeline_attachment(report: Report) -> None:
    uid = rendered_case(report.html)["uid"]
    run = run_chromium(
        chromium_command(),
        report.scratch / "chromium-dom",
        f"{report.base_url}/#testresult/{uid}",
        "--dump-dom",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    dom = run.stdout
    # Set-up and tear-down stages (the fixtures) are rows of the same kind around the phases.
    steps = re.findall(r'<div class="step__name">([^<]*)</div>', dom)
    assert [s for s in steps if s.startswith("phase ")] == STEP_TITLES, steps
    rows = re.findall(r'<div class="attachment-row__name[^"]*">([^<]*)</div>', dom)
    assert {"timeline.svg", "timeline.json", "events.json", "traffic.json"} <= set(rows), rows
    assert {"chart.svg", "k8sdr-report.html"} <= set(rows), rows


def test_timeline_chart_renders_in_the_browser(report: Report) -> None:
    case = rendered_case(report.html)
    svg = rendered_attachment(case, "timeline.svg")
    # `?attachment=<uid>` is the report's own route for an attachment opened full screen.
    url = f"{report.base_url}/#testresult/{case['uid']}?attachment={svg['uid']}"
    png = report.scratch / "timeline.png"
    run = run_chromium(
        chromium_command(),
        report.scratch / "chromium-shot",
        url,
        "--window-size=1280,800",
        f"--screenshot={png}",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    width, height, pixels = decode_png(png.read_bytes())
    assert (width, height) == (1280, 800)
    assert len(set(pixels)) > 50, "the screenshot is (nearly) blank"
    # The bars of phases that met their SLO are solid green: a chart of ~760 px wide bars
    # 22 px high covers thousands of pixels; without the chart the page has hardly any.
    green = sum(1 for p in pixels if p == OK_GREEN)
    assert green > 5000, f"only {green} pixels of the chart's green: chart not rendered ({png})"
