"""Reports of a run: phase table, JUnit properties, timeline files, allure steps, attachments.

Allure stays optional: without allure-pytest nothing is attached and nothing breaks.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from pytest_k8sdr.report_html import experiment_svg, render_html
from pytest_k8sdr.runbook import PhaseRecord, Runbook

#: The file in the report directory holding every experiment's phases, whichever worker ran it.
SUMMARY_FILE = "k8sdr-summary.json"

VERDICT_MARK = {"ok": "ok", "slo-exceeded": "SLO!", "failed": "FAIL", "error": "ERR"}

# Allure categories: "the cluster missed its SLO" vs "the tool itself failed".
ALLURE_CATEGORIES = [
    {
        "name": "SLO exceeded",
        "matchedStatuses": ["failed"],
        "messageRegex": r"(?s).*exceeded its SLO.*",
    },
    {
        "name": "Cluster did not heal",
        "matchedStatuses": ["failed"],
        "traceRegex": r"(?s).*(ClusterCheckFailed|WaitTimeout).*",
    },
    {
        "name": "The tool failed",
        "matchedStatuses": ["broken"],
        "traceRegex": r"(?s).*(ToolError|FaultError|ConfigError|MachineError|UndoError).*",
    },
]


@dataclass
class RunbookResult:
    """One test's runbook phases, kept for the end-of-run table and summary.

    `record` is its recorder's (`Recorder.to_json`): the cluster's events and the traffic.
    """

    nodeid: str
    phases: list[PhaseRecord]
    worker: str | None = None
    record: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class RunReport:
    """What the session collected: each experiment's phases, from whichever process ran it."""

    results: list[RunbookResult] = field(default_factory=list)

    def add(
        self,
        nodeid: str,
        phases: Iterable[Mapping[str, Any]],
        worker: str | None = None,
        record: Mapping[str, Any] | None = None,
    ) -> None:
        """Keep a test's phases (`Runbook.summary()`'s records), if it ran any."""
        records = [PhaseRecord.from_json(p) for p in phases]
        if records:
            self.results.append(RunbookResult(nodeid, records, worker, dict(record or {})))

    def to_json(self) -> str:
        """Every experiment's phases, marks, events and traffic (and its xdist worker) as JSON."""
        return json.dumps(
            {
                "experiments": [
                    {
                        "test": r.nodeid,
                        "worker": r.worker,
                        "phases": [p.to_json() for p in r.phases],
                        **r.record,
                    }
                    for r in self.results
                ]
            },
            indent=2,
        )

    def table(self) -> str:
        """Experiments by phases with durations and verdicts, as fixed-width text."""
        if not self.results:
            return ""
        phases: list[str] = []
        for r in self.results:
            for p in r.phases:
                if p.name not in phases:
                    phases.append(p.name)
        header = ["experiment", *phases]
        rows = []
        for r in self.results:
            by_name: dict[str, PhaseRecord] = {p.name: p for p in r.phases}
            cells = [r.nodeid.rsplit("::", 1)[-1]]
            cells += [_cell(by_name[name]) if name in by_name else "-" for name in phases]
            rows.append(cells)
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True))]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
        return "\n".join(lines)


def _cell(p: PhaseRecord) -> str:
    took = f"{p.duration:.1f}s" if p.duration is not None else "?"
    slo = f"/{p.slo:g}s" if p.slo is not None else ""
    return f"{took}{slo} {VERDICT_MARK.get(p.verdict, p.verdict)}"


def junit_properties(runbook: Runbook) -> list[tuple[str, str]]:
    """Phase durations and verdicts as JUnit XML properties."""
    props = []
    for p in runbook.phases:
        key = p.name.replace(" ", "_")
        if p.duration is not None:
            props.append((f"k8sdr.phase.{key}.seconds", f"{p.duration:.3f}"))
        if p.slo is not None:
            props.append((f"k8sdr.phase.{key}.slo_seconds", f"{p.slo:.3f}"))
        props.append((f"k8sdr.phase.{key}.verdict", p.verdict))
    return props


def traffic_properties(traffic: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """Each probe's totals as JUnit XML properties (the per-second series stay in the JSON).

    The first probe's are ``k8sdr.traffic.*``, a second one's ``k8sdr.traffic2.*``, ...
    """
    props: list[tuple[str, str]] = []
    for i, figures in enumerate(traffic, start=1):
        key = "k8sdr.traffic" if i == 1 else f"k8sdr.traffic{i}"
        props.append((f"{key}.url", str(figures["url"])))
        props.append((f"{key}.requests", str(figures["requests"])))
        props.append((f"{key}.errors", str(figures["errors"])))
        for kind, count in sorted(figures["errors_by_kind"].items()):
            props.append((f"{key}.errors.{_prop_word(kind)}", str(count)))
        for name in ("latency_p50_ms", "latency_p99_ms"):
            if figures.get(name) is not None:
                props.append((f"{key}.{name}", f"{figures[name]:.2f}"))
        for node, share in figures["share_by_node"].items():
            props.append((f"{key}.share.{_prop_word(node)}", f"{share:.4f}"))
        window = figures.get("error_window")
        if window:
            props.append((f"{key}.error_window.seconds", f"{window['seconds']:.3f}"))
            for end in ("start", "end"):
                at = datetime.fromtimestamp(window[end], UTC).isoformat()
                props.append((f"{key}.error_window.{end}", at))
        props.append((f"{key}.to_drained_or_dead_nodes", str(figures["to_outage_nodes"])))
    return props


def _prop_word(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text) or "_"


def timeline_svg(runbook: Runbook, *, width: int = 760) -> str:
    """A Gantt-style chart of the phases and the timeline's marks, as standalone SVG."""
    phases = [p for p in runbook.phases if p.duration is not None]
    if not phases:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'
    origin = phases[0].started
    total = max(
        [(p.ended - origin).total_seconds() for p in phases if p.ended]
        + [(m.at - origin).total_seconds() for m in runbook.marks]
        + [0.001]
    )
    left, bar_h, gap = 110, 22, 8
    # The right margin keeps the duration label after the last bar inside the picture.
    scale = (width - left - 50) / total
    height = 40 + len(phases) * (bar_h + gap) + 16 * len(runbook.marks)
    colour = {"ok": "#4caf50", "slo-exceeded": "#ff9800", "failed": "#f44336", "error": "#9e9e9e"}
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<text x="4" y="16" font-weight="bold">{escape(runbook.name)} timeline</text>',
    ]
    y = 30
    for p in phases:
        x0 = left + (p.started - origin).total_seconds() * scale
        w = max(2.0, (p.duration or 0) * scale)
        out.append(f'<text x="4" y="{y + 15}">{escape(p.name)}</text>')
        out.append(
            f'<rect class="phase" x="{x0:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" '
            f'fill="{colour.get(p.verdict, "#607d8b")}"><title>{escape(p.name)}: '
            f"{p.duration:.2f}s ({p.verdict})</title></rect>"
        )
        out.append(f'<text x="{x0 + w + 4:.1f}" y="{y + 15}">{p.duration:.1f}s</text>')
        y += bar_h + gap
    for m in sorted(runbook.marks, key=lambda m: m.at):
        x = left + (m.at - origin).total_seconds() * scale
        out.append(
            f'<line x1="{x:.1f}" y1="26" x2="{x:.1f}" y2="{y}" stroke="#333" '
            'stroke-dasharray="2,2"/>'
        )
        # Labels of marks in the right half end at their line, so long ones are not clipped.
        anchor = "end" if x > width / 2 else "start"
        out.append(
            f'<text x="{x:.1f}" y="{y + 12}" text-anchor="{anchor}">'
            f"{escape(m.label)} (+{(m.at - origin).total_seconds():.1f}s)</text>"
        )
        y += 16
    out.append("</svg>")
    return "\n".join(out)


def write_timeline(
    runbook: Runbook, directory: Path, stem: str, record: Mapping[str, Any] | None = None
) -> list[Path]:
    """Write the runbook's JSON (with its recorder's `record`) and SVG timeline into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)
    json_path, svg_path = directory / f"{safe}.timeline.json", directory / f"{safe}.timeline.svg"
    document = json.loads(runbook.to_json())
    document.update(record or {})
    json_path.write_text(json.dumps(document, indent=2))
    svg_path.write_text(timeline_svg(runbook))
    return [json_path, svg_path]


def allure_module() -> Any:
    """The `allure` module when allure-pytest is installed, else None."""
    try:
        import allure
    except ImportError:
        return None
    return allure


class AllureSteps:
    """Runbook listener: each phase an allure step; the timeline attached at the end."""

    def __init__(self, allure: Any) -> None:
        self.allure = allure
        self._open: dict[int, Any] = {}

    def phase_started(self, runbook: Runbook, record: PhaseRecord) -> None:
        """Open an allure step for the phase."""
        slo = f" (SLO {record.slo:g}s)" if record.slo is not None else ""
        step = self.allure.step(f"phase {record.name}{slo}")
        step.__enter__()
        self._open[id(record)] = step

    def phase_ended(
        self, runbook: Runbook, record: PhaseRecord, error: BaseException | None
    ) -> None:
        """Close the phase's step, failed when the phase failed."""
        step = self._open.pop(id(record), None)
        if step is not None:
            step.__exit__(
                type(error) if error else None, error, error.__traceback__ if error else None
            )

    def attach(self, runbook: Runbook, record: Mapping[str, Any] | None = None) -> None:
        """Attach the timeline, the recorder's events and traffic, and the run page's chart.

        `record` is the recorder's (`Recorder.to_json`): its events and traffic figures go as
        JSON, and the experiment's chart (phases, event lanes, traffic lanes) as SVG and as the
        run page's HTML holding only this experiment (allure shows both inline).
        """
        kind = self.allure.attachment_type
        self.allure.attach(runbook.to_json(), name="timeline.json", attachment_type=kind.JSON)
        self.allure.attach(timeline_svg(runbook), name="timeline.svg", attachment_type=kind.SVG)
        if record is None:
            return
        for name in ("events", "traffic"):
            self.allure.attach(
                json.dumps(record.get(name) or [], indent=2, default=str),
                name=f"{name}.json",
                attachment_type=kind.JSON,
            )
        experiment = {
            "test": runbook.name,
            "phases": runbook.summary(),
            "marks": runbook.timeline(),
            **record,
        }
        chart = experiment_svg(experiment)
        if chart:
            self.allure.attach(chart, name="chart.svg", attachment_type=kind.SVG)
        page = render_html({"experiments": [experiment]}, title=runbook.name)
        self.allure.attach(page, name="k8sdr-report.html", attachment_type=kind.HTML)


def write_allure_environment(results_dir: Path, facts: Mapping[str, str]) -> None:
    """Write `environment.properties` and `categories.json` into an allure results directory."""
    results_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"{k}={str(v).replace(chr(10), ' ')}" for k, v in sorted(facts.items())]
    (results_dir / "environment.properties").write_text("\n".join(lines) + "\n")
    (results_dir / "categories.json").write_text(json.dumps(ALLURE_CATEGORIES, indent=2))


class Progress:
    """A live line for long waits: what is awaited, how many of how many, elapsed.

    `write(text)` shows text at once (the terminal reporter's `write(text, flush=True)`). On a
    terminal (`tty`) it rewrites one line; elsewhere (CI logs) it prints at most one line every
    `ci_interval` seconds so logs stay readable.
    """

    def __init__(
        self,
        write: Callable[[str], object] | None = None,
        *,
        tty: bool = False,
        ci_interval: float = 10.0,
    ) -> None:
        self.write = write or _stderr
        self.tty = tty
        self.ci_interval = ci_interval
        # None until the first line: monotonic() counts from boot, so no number is "long ago".
        self._last: float | None = None
        self._shown = False

    def update(self, what: str, done: int | None, total: int | None, elapsed: float) -> None:
        """Show the state of a wait."""
        count = f" {done}/{total}" if done is not None and total is not None else ""
        text = f"k8sdr: waiting for {what}{count} ({elapsed:.0f}s)"
        now = time.monotonic()
        if self.tty:
            # Start on a line of our own, so pytest's progress line is not overwritten.
            prefix = "\r\x1b[2K" if self._shown else "\n"
            self.write(prefix + text)
            self._shown = True
        elif self._last is None or now - self._last >= self.ci_interval:
            self.write(text + "\n")
            self._last = now

    def done(self) -> None:
        """Clear the live line."""
        if self.tty and self._shown:
            self.write("\r\x1b[2K")
            self._shown = False


def _stderr(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


def placement_table(placements: Iterable[tuple[str, Mapping[str, int]]]) -> dict[str, Any]:
    """Pod placement snapshots (label → node → count) as one JSON document."""
    return {label: dict(counts) for label, counts in placements}
