"""The run's HTML page as headless Chromium draws it: the load-balancer experiment's page.

A child pytest runs experiments/test_load_balancer.py's drain under traffic on the embedded
simulator with `--k8sdr-report-dir`; Chromium opens its `k8sdr-report.html` from the file (no
server, no network), once for the DOM after the page's script ran and once for a screenshot.
The assertions read what is drawn: lane elements holding the recorder's events, the victim's
requests/s bars from the SVG, and the screenshot's pixels in the victim's lane either side of
the LB drain line. Skipped, saying why, when Chromium is not installed (`bash ci/setup`
installs it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from report_browser import decode_png, find_chromium, run_chromium, run_experiment

from pytest_k8sdr.report_html import LANE_COLOUR

WINDOW = (1280, 1400)  # tall enough for the table and the whole chart of one experiment
EVENT_LANES = ("faults", "lb", "nodes", "pods", "endpoints")


@dataclass
class Lane:
    """A lane of the drawn chart: its box on the page and the marks drawn in it."""

    key: str
    box: tuple[int, int, int, int]  # left, top, width, height on the page (the page's script)
    events: list[dict[str, str]] = field(default_factory=list)
    bars: list[dict[str, str]] = field(default_factory=list)


class ChartParser(HTMLParser):
    """Collects the lanes, their events and bars, and the drain line from the dumped DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.lanes: dict[str, Lane] = {}
        self.drains: list[dict[str, str]] = []
        self._lane: Lane | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        classes = a.get("class", "").split()
        if tag == "g" and "lane" in classes:
            box = tuple(int(v) for v in a["data-box"].split(","))
            assert len(box) == 4, a
            self._lane = Lane(a["data-lane"], (box[0], box[1], box[2], box[3]))
            self.lanes[self._lane.key] = self._lane
        elif tag == "rect" and self._lane is not None and "event" in classes:
            self._lane.events.append(a)
        elif tag == "rect" and self._lane is not None and "bar" in classes:
            self._lane.bars.append(a)
        elif tag == "line" and "drain" in classes:
            self.drains.append(a)

    def handle_endtag(self, tag: str) -> None:
        if tag == "g":
            self._lane = None


@dataclass
class Page:
    summary: dict[str, Any]
    lanes: dict[str, Lane]
    drain_x: float  # the drain line's x in the SVG (and on the page: the box's left)
    drain_page_x: int
    width: int
    height: int
    pixels: list[tuple[int, ...]]
    png: Path


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Page:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("headless Chromium is not installed (`bash ci/setup` installs it from APT)")
    scratch = tmp_path_factory.mktemp("page")
    reports = scratch / "reports"
    child = run_experiment(scratch, f"--k8sdr-report-dir={reports}")
    assert child.returncode == 0, child.stdout[-4000:] + child.stderr[-4000:]
    summary = json.loads((reports / "k8sdr-summary.json").read_text())
    url = (reports / "k8sdr-report.html").as_uri()
    size = f"--window-size={WINDOW[0]},{WINDOW[1]}"
    dom = run_chromium(chromium, scratch / "chromium-dom", url, size, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-3000:]
    parser = ChartParser()
    parser.feed(dom.stdout)
    assert len(parser.drains) == 1, parser.drains
    drain = parser.drains[0]
    png = scratch / "report.png"
    shot = run_chromium(chromium, scratch / "chromium-shot", url, size, f"--screenshot={png}")
    assert shot.returncode == 0, shot.stderr[-3000:]
    width, height, pixels = decode_png(png.read_bytes())
    return Page(
        summary,
        parser.lanes,
        float(drain["x1"]),
        int(drain["data-box"].split(",")[0]),
        width,
        height,
        pixels,
        png,
    )


def colour(hex_colour: str) -> tuple[int, int, int]:
    value = hex_colour.lstrip("#")
    return (int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16))


def count(page: Page, lane: Lane, rgb: tuple[int, ...], x0: int, x1: int) -> int:
    """Pixels of exactly `rgb` in the lane's rows, between page columns x0 and x1."""
    left, top, width, height = lane.box
    assert top + height <= page.height, f"lane {lane.key} is below the screenshot"
    return sum(
        1
        for y in range(top, top + height)
        for x in range(max(x0, left), min(x1, left + width, page.width))
        if page.pixels[y * page.width + x] == rgb
    )


def victim_of(page: Page) -> str:
    (experiment,) = page.summary["experiments"]
    (traffic,) = experiment["traffic"]
    (drained,) = [o for o in traffic["outages"] if o["why"] == "drained"]
    return str(drained["node"])


def test_event_lanes_are_drawn_with_the_recorders_events(page: Page) -> None:
    for key in EVENT_LANES:
        assert key in page.lanes, sorted(page.lanes)
        lane = page.lanes[key]
        assert lane.events, f"lane {key} holds no event"
        assert all(e["data-tip"].startswith("+") for e in lane.events), lane.events[:3]
        # In the screenshot: the lane's own colour, one tick per event at least.
        ticks = count(page, lane, colour(LANE_COLOUR[key]), 0, page.width)
        assert ticks >= len(lane.events), f"lane {key}: {ticks} pixels for {len(lane.events)}"
    victim = victim_of(page)
    tips = [e["data-tip"] for e in page.lanes["lb"].events]
    assert any("LB reloaded: drain" in t and victim in t for t in tips), tips
    tips = [e["data-tip"] for e in page.lanes["nodes"].events]
    assert any(t.endswith(f"{victim} Ready=Unknown") for t in tips), tips


def test_victims_traffic_drops_to_zero_after_the_lb_drain(page: Page) -> None:
    victim = victim_of(page)
    lane = page.lanes[f"requests-{victim}"]
    # The drawn series: the victim answered before, and no bar reaches past the drain line.
    assert lane.bars, "the victim never answered: nothing to see drop"
    ends = [float(b["x"]) + float(b["width"]) for b in lane.bars]
    assert max(ends) <= page.drain_x, (ends, page.drain_x)
    # Traffic went on past the drain, answered by the other nodes.
    others = [
        bar
        for key, other in page.lanes.items()
        if key.startswith("requests-") and key != lane.key
        for bar in other.bars
    ]
    assert any(float(b["x"]) + float(b["width"]) > page.drain_x for b in others)
    # The screenshot shows it: the victim's colour left of the line, none right of it.
    rgb = colour(lane.bars[0]["fill"])
    assert count(page, lane, rgb, 0, page.drain_page_x - 1) > 50
    assert count(page, lane, rgb, page.drain_page_x + 2, page.width) == 0
