"""One self-contained HTML page per run, and the comparison of two runs' phase times.

The page is built from the run's summary (`k8sdr-summary.json`'s document: under pytest-xdist
the controller's, with every worker's experiments). Everything is inline (CSS, SVG, a few
lines of JavaScript for the hover text): it opens from a file with no network.

Per experiment, one chart on one time axis: the phases, the test's marks, a lane per kind of
event the recorder saw (faults, LB, nodes, pods, endpoints, events), then the traffic lanes
(requests per second answered by each node, errors per second, latency) and a lane for any
other numeric series the experiment holds (``series``: name -> [[time, value], ...], time in
seconds since the epoch or ISO 8601), drawn the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any

#: The run's page in the report directory.
HTML_FILE = "k8sdr-report.html"

VERDICT_COLOUR = {
    "ok": "#4caf50",
    "slo-exceeded": "#ff9800",
    "failed": "#f44336",
    "error": "#9e9e9e",
}
LANE_COLOUR = {
    "faults": "#d32f2f",
    "lb": "#7b1fa2",
    "nodes": "#1565c0",
    "pods": "#00897b",
    "endpoints": "#f9a825",
    "events": "#5d4037",
}
EVENT_LANES = ("faults", "lb", "nodes", "pods", "endpoints", "events")
SERIES_COLOURS = ("#1e88e5", "#43a047", "#fb8c00", "#8e24aa", "#00acc1", "#6d4c41", "#c0ca33")

WIDTH = 1100
LEFT = 190  # the lanes' titles
RIGHT = 20
EVENT_H = 22
SERIES_H = 56
GAP = 6


@dataclass(frozen=True)
class Series:
    """One numeric series of a lane: (time in epoch seconds, value) points."""

    name: str
    points: tuple[tuple[float, float], ...]
    colour: str


@dataclass(frozen=True)
class Lane:
    """A lane of numeric series sharing one y axis: bars (per-second counts) or lines."""

    key: str
    title: str
    unit: str
    series: tuple[Series, ...]
    bars: bool = False


def _epoch(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    return None


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-").lower() or "x"


def traffic_lanes(traffic: Sequence[Mapping[str, Any]]) -> list[Lane]:
    """Each probe's per-second figures as lanes: requests/s per node, errors/s, latency."""
    lanes: list[Lane] = []
    for i, figures in enumerate(traffic, start=1):
        seconds = list(figures.get("per_second") or [])
        suffix = "" if len(traffic) == 1 else f" (probe {i})"
        nodes = sorted({n for s in seconds for n in s.get("by_node") or {}})
        for j, node in enumerate(nodes):
            points = tuple(
                (float(s["t"]), float((s.get("by_node") or {}).get(node, 0))) for s in seconds
            )
            colour = SERIES_COLOURS[j % len(SERIES_COLOURS)]
            lanes.append(
                Lane(
                    f"requests-{_slug(node)}{i if len(traffic) > 1 else ''}",
                    f"requests/s on {node}{suffix}",
                    "req/s",
                    (Series(f"requests/s on {node}", points, colour),),
                    bars=True,
                )
            )
        errors = tuple((float(s["t"]), float(s.get("errors") or 0)) for s in seconds)
        lanes.append(
            Lane(
                f"errors{i if len(traffic) > 1 else ''}",
                f"errors/s{suffix}",
                "err/s",
                (Series("errors/s", errors, "#e53935"),),
                bars=True,
            )
        )
        latency = []
        for name, colour in (("latency_p50_ms", "#546e7a"), ("latency_p99_ms", "#ef6c00")):
            pts = tuple((float(s["t"]), float(s[name])) for s in seconds if s.get(name) is not None)
            latency.append(Series(name.removeprefix("latency_").replace("_ms", ""), pts, colour))
        lanes.append(
            Lane(
                f"latency{i if len(traffic) > 1 else ''}", f"latency{suffix}", "ms", tuple(latency)
            )
        )
    return lanes


def series_lanes(series: Any) -> list[Lane]:
    """Any other numeric series an experiment holds: a lane each, drawn as lines.

    Accepted shapes: ``{name: [[t, v], ...]}`` or ``[{"name": ..., "points": [[t, v], ...],
    "unit": ...}, ...]``; a point whose time or value is not a number is left out.
    """
    items: list[tuple[str, Any, str]] = []
    if isinstance(series, Mapping):
        items = [(str(k), v, "") for k, v in series.items()]
    elif isinstance(series, list):
        for entry in series:
            if isinstance(entry, Mapping) and "name" in entry:
                items.append((str(entry["name"]), entry.get("points"), str(entry.get("unit", ""))))
    lanes = []
    for i, (name, raw, unit) in enumerate(items):
        points = []
        for point in raw if isinstance(raw, list) else []:
            if isinstance(point, list | tuple) and len(point) == 2:
                t, v = _epoch(point[0]), point[1]
                if t is not None and isinstance(v, int | float) and not isinstance(v, bool):
                    points.append((t, float(v)))
        if points:
            colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
            lanes.append(
                Lane(f"series-{_slug(name)}", name, unit, (Series(name, tuple(points), colour),))
            )
    return lanes


class _Axis:
    def __init__(self, start: float, end: float) -> None:
        self.start = start
        self.span = max(end - start, 0.001)
        self.width = WIDTH - LEFT - RIGHT

    def x(self, t: float) -> float:
        return LEFT + (t - self.start) / self.span * self.width


def experiment_svg(experiment: Mapping[str, Any], *, anchor: str = "x") -> str:
    """One experiment's chart: phases, marks, event lanes and traffic lanes on one time axis."""
    phases = [p for p in experiment.get("phases") or [] if _epoch(p.get("started")) is not None]
    events = [e for e in experiment.get("events") or [] if isinstance(e.get("t"), int | float)]
    marks = [m for m in experiment.get("marks") or [] if _epoch(m.get("at")) is not None]
    lanes = traffic_lanes(experiment.get("traffic") or []) + series_lanes(experiment.get("series"))
    times: list[float] = [float(e["t"]) for e in events]
    for p in phases:
        times.append(_epoch(p["started"]) or 0.0)
        if _epoch(p.get("ended")) is not None:
            times.append(_epoch(p["ended"]) or 0.0)
    times += [_epoch(m["at"]) or 0.0 for m in marks]
    for lane in lanes:
        for s in lane.series:
            times += [t for t, _ in s.points] + [t + 1.0 for t, _ in s.points[-1:]]
    if not times:
        return ""
    axis = _Axis(min(times), max(times))
    kinds = [kind for kind in EVENT_LANES if any(e["lane"] == kind for e in events)]
    height = 34 + 28 + len(kinds) * (EVENT_H + GAP) + len(lanes) * (SERIES_H + GAP) + 20
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" '
        'font-size="11">',
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>',
    ]
    # Time axis: a tick every "nice" number of seconds since the start.
    step = next((s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600) if axis.span / s <= 12), 1200)
    tick = 0.0
    while tick <= axis.span + 1e-9:
        x = axis.x(axis.start + tick)
        out.append(f'<line x1="{x:.1f}" y1="20" x2="{x:.1f}" y2="{height - 14}" stroke="#eee"/>')
        out.append(f'<text x="{x:.1f}" y="14" text-anchor="middle" fill="#666">+{tick:g}s</text>')
        tick += step
    y = 28
    # Phases.
    out.append(f'<text x="6" y="{y + 15}" font-weight="bold">phases</text>')
    for p in phases:
        x0 = axis.x(_epoch(p["started"]) or axis.start)
        end = _epoch(p.get("ended"))
        x1 = axis.x(end) if end is not None else x0 + 2
        verdict = str(p.get("verdict"))
        seconds = p.get("seconds")
        took = f"{seconds:.2f}s" if isinstance(seconds, int | float) else "?"
        slo = p.get("slo_seconds")
        tip = f"phase {p['phase']}: {took}" + (f" (SLO {slo:g}s)" if slo else "") + f", {verdict}"
        out.append(
            f'<rect class="phase" data-phase="{escape(str(p["phase"]))}" x="{x0:.1f}" y="{y}" '
            f'width="{max(2.0, x1 - x0):.1f}" height="20" '
            f'fill="{VERDICT_COLOUR.get(verdict, "#607d8b")}" data-tip="{escape(tip)}">'
            f"<title>{escape(tip)}</title></rect>"
        )
        if x1 - x0 > 40:
            out.append(
                f'<text x="{x0 + 3:.1f}" y="{y + 14}" fill="#fff" pointer-events="none">'
                f"{escape(str(p['phase']))}</text>"
            )
    y += 28
    # Event lanes: a tick per event; hovering shows what, when and the detail.
    for kind in kinds:
        colour = LANE_COLOUR.get(kind, "#333")
        out.append(
            f'<g class="lane events" data-lane="{kind}" data-box-id="lane-{anchor}-{kind}">'
            f'<rect x="{LEFT}" y="{y}" width="{axis.width}" height="{EVENT_H}" fill="#fafafa"/>'
            f'<text x="6" y="{y + 15}">{escape(kind)}</text>'
        )
        for e in (e for e in events if e["lane"] == kind):
            x = axis.x(float(e["t"]))
            at = float(e["t"]) - axis.start
            tip = f"+{at:.2f}s {e['label']}" + (f" ({e['detail']})" if e.get("detail") else "")
            out.append(
                f'<rect class="event" x="{x - 1.5:.1f}" y="{y + 3}" width="3" '
                f'height="{EVENT_H - 6}" fill="{colour}" data-tip="{escape(tip)}">'
                f"<title>{escape(tip)}</title></rect>"
            )
        out.append("</g>")
        y += EVENT_H + GAP
    # Numeric lanes. Lines (marks, drains) are drawn over them only, never over an event
    # lane, where they would hide the ticks of what the cluster did at that moment.
    top = y
    for lane in lanes:
        out.append(_series_lane(lane, axis, y, anchor))
        y += SERIES_H + GAP
    # Marks over everything: the test's own words.
    for m in marks:
        x = axis.x(_epoch(m["at"]) or axis.start)
        tip = f"+{(_epoch(m['at']) or 0) - axis.start:.2f}s mark: {m['label']}"
        out.append(
            f'<line class="mark" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{y}" '
            f'stroke="#333" stroke-dasharray="3,3" data-tip="{escape(tip)}">'
            f"<title>{escape(tip)}</title></line>"
        )
    # The LB drains, as lines over the traffic lanes: the moment its traffic should stop.
    for e in events:
        if e["lane"] == "lb" and str(e["label"]).startswith("LB reloaded: drain"):
            x = axis.x(float(e["t"]))
            out.append(
                f'<line class="drain" data-box-id="drain-{anchor}" x1="{x:.1f}" y1="{top}" '
                f'x2="{x:.1f}" y2="{y}" stroke="#7b1fa2" stroke-width="1.5"/>'
            )
    out.append("</svg>")
    return "\n".join(out)


def _series_lane(lane: Lane, axis: _Axis, y: float, anchor: str) -> str:
    peak = max((v for s in lane.series for _, v in s.points), default=0.0) or 1.0
    inner = SERIES_H - 8

    def ypos(v: float) -> float:
        return y + 4 + inner - v / peak * inner

    out = [
        f'<g class="lane series" data-lane="{escape(lane.key)}" '
        f'data-box-id="lane-{anchor}-{escape(lane.key)}">',
        f'<rect x="{LEFT}" y="{y}" width="{axis.width}" height="{SERIES_H}" fill="#fafafa"/>',
        f'<text x="6" y="{y + 16}">{escape(lane.title)}</text>',
        f'<text x="6" y="{y + 30}" fill="#888">max {peak:g} {escape(lane.unit)}</text>',
        f'<line x1="{LEFT}" y1="{y + 4 + inner}" x2="{LEFT + axis.width}" y2="{y + 4 + inner}" '
        'stroke="#ccc"/>',
    ]
    for s in lane.series:
        if lane.bars:
            w = max(1.0, axis.x(axis.start + 1.0) - axis.x(axis.start) - 1.0)
            for t, v in s.points:
                if v <= 0:
                    continue
                top = ypos(v)
                tip = f"+{t - axis.start:.0f}s {s.name}: {v:g}"
                out.append(
                    f'<rect class="bar" x="{axis.x(t):.1f}" y="{top:.1f}" width="{w:.1f}" '
                    f'height="{y + 4 + inner - top:.1f}" fill="{s.colour}" '
                    f'data-tip="{escape(tip)}">'
                    f"<title>{escape(tip)}</title></rect>"
                )
        elif s.points:
            path = " ".join(f"{axis.x(t):.1f},{ypos(v):.1f}" for t, v in s.points)
            out.append(
                f'<polyline fill="none" stroke="{s.colour}" stroke-width="1.5" points="{path}" '
                f'data-tip="{escape(s.name)}"><title>{escape(s.name)}</title></polyline>'
            )
    names = ", ".join(s.name for s in lane.series if not lane.bars)
    if names:
        out.append(f'<text x="6" y="{y + 44}" fill="#888">{escape(names)}</text>')
    out.append("</g>")
    return "\n".join(out)


_CSS = """
body { font-family: sans-serif; margin: 16px; color: #222; }
table { border-collapse: collapse; margin-bottom: 20px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; font-size: 13px; text-align: left; }
td.ok { background: #e8f5e9; } td.slo-exceeded { background: #fff3e0; }
td.failed { background: #ffebee; } td.error { background: #eeeeee; }
h2 { font-size: 16px; margin: 24px 0 6px; } .facts { color: #555; font-size: 13px; }
#tip { position: fixed; display: none; background: #263238; color: #fff; padding: 4px 8px;
       font-size: 12px; border-radius: 3px; pointer-events: none; max-width: 600px; }
"""

# Hover text, and each lane's box on the page (for the project's own screenshot test).
_JS = """
(function () {
  var tip = document.getElementById('tip');
  document.addEventListener('mousemove', function (ev) {
    var el = ev.target.closest ? ev.target.closest('[data-tip]') : null;
    if (!el) { tip.style.display = 'none'; return; }
    tip.textContent = el.getAttribute('data-tip');
    tip.style.left = (ev.clientX + 12) + 'px'; tip.style.top = (ev.clientY + 12) + 'px';
    tip.style.display = 'block';
  });
  document.querySelectorAll('[data-box-id]').forEach(function (el) {
    var r = el.getBoundingClientRect();
    el.setAttribute('data-box', [r.left, r.top, r.width, r.height].map(Math.round).join(','));
  });
})();
"""


def _phase_names(experiments: Iterable[Mapping[str, Any]]) -> list[str]:
    names: list[str] = []
    for e in experiments:
        for p in e.get("phases") or []:
            if p["phase"] not in names:
                names.append(str(p["phase"]))
    return names


def render_html(summary: Mapping[str, Any], *, title: str = "pytest-k8sdr run") -> str:
    """The run's page: a table of experiments by phase, then each experiment's chart."""
    experiments = list(summary.get("experiments") or [])
    names = _phase_names(experiments)
    rows = []
    for i, e in enumerate(experiments):
        by_name = {p["phase"]: p for p in e.get("phases") or []}
        cells = [f'<td><a href="#exp-{i}">{escape(str(e["test"]))}</a></td>']
        for name in names:
            p = by_name.get(name)
            if p is None:
                cells.append("<td>-</td>")
                continue
            seconds, slo = p.get("seconds"), p.get("slo_seconds")
            took = f"{seconds:.1f}s" if isinstance(seconds, int | float) else "?"
            limit = f" / {slo:g}s" if isinstance(slo, int | float) else ""
            verdict = escape(str(p.get("verdict")))
            cells.append(f'<td class="{verdict}">{took}{limit} {verdict}</td>')
        rows.append(f'<tr class="experiment">{"".join(cells)}</tr>')
    header = "".join(f"<th>{escape(n)}</th>" for n in ["experiment", *names])
    sections = []
    for i, e in enumerate(experiments):
        facts = [f"worker {escape(str(e['worker']))}"] if e.get("worker") else []
        for t in e.get("traffic") or []:
            window = t.get("error_window")
            shares = ", ".join(f"{escape(n)} {s:.0%}" for n, s in t["share_by_node"].items())
            facts.append(
                f"{t['requests']} requests, {t['errors']} errors"
                + (f" over {window['seconds']:.2f}s" if window else "")
                + f", {t['to_outage_nodes']} to drained or dead nodes; answered by {shares}"
            )
        sections.append(
            f'<section class="experiment" id="exp-{i}"><h2>{escape(str(e["test"]))}</h2>'
            f'<div class="facts">{"<br>".join(facts)}</div>'
            f"{experiment_svg(e, anchor=str(i))}</section>"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1>"
        f'<table class="phases"><thead><tr>{header}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
        f"{''.join(sections)}"
        f'<div id="tip"></div><script>{_JS}</script></body></html>\n'
    )


@dataclass(frozen=True)
class Slower:
    """A phase that took longer in the new run than in the old one."""

    test: str
    phase: str
    old: float
    new: float

    def describe(self) -> str:
        """``test: phase 2.0s -> 3.1s (+55%)``."""
        more = (self.new - self.old) / self.old if self.old else float("inf")
        return f"{self.test}: {self.phase} {self.old:.2f}s -> {self.new:.2f}s (+{more:.0%})"


def phase_times(summary: Mapping[str, Any]) -> dict[tuple[str, str], float]:
    """Each (test, phase) of a summary with the seconds it took (phases never timed left out)."""
    out = {}
    for e in summary.get("experiments") or []:
        for p in e.get("phases") or []:
            if isinstance(p.get("seconds"), int | float):
                out[(str(e["test"]), str(p["phase"]))] = float(p["seconds"])
    return out


def compare(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    *,
    tolerance: float = 0.2,
    min_seconds: float = 0.5,
) -> list[Slower]:
    """Phases slower in `new` than in `old` (two summaries), by test and phase name.

    Slower means more than `tolerance` (a fraction) and `min_seconds` longer: a phase of a
    tenth of a second that doubles is noise, not a regression.
    """
    before, after = phase_times(old), phase_times(new)
    slower = []
    for key, seconds in after.items():
        was = before.get(key)
        if was is None:
            continue
        if seconds - was > min_seconds and seconds > was * (1 + tolerance):
            slower.append(Slower(key[0], key[1], was, seconds))
    return slower


def load_summary(text: str, source: str) -> dict[str, Any]:
    """A summary document; ValueError naming `source` when it is not one."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{source} is not JSON: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("experiments"), list):
        raise ValueError(f"{source} is not a k8sdr summary (no 'experiments' list)")
    return document
