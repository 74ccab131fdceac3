"""Every benchmark of pytest-k8sdr in one report: figures, ratios to baselines, a JSON file.

    .venv/bin/python ci/bench/run_all.py [--quick] [--json ci/bench/results.json]
        [--markdown PATH] [--only NAME,...] [--skip NAME,...]

Runs each benchmark script of ci/bench/ as a subprocess (each measures its own baseline in the
same run and prints figures as ratios to it), shows its report as it comes, then prints a
summary with the headline figure of each, and the wall time of `pytest experiments/` on the
simulator beside the fixed cost of a session on the simulator (one trivial test using the
`cluster` fixture) measured just before it. A benchmark that is missing, fails or times out is
reported as such and the others still run; the exit status is 1 when any failed.

`--quick` runs every benchmark smaller (tens of seconds each instead of minutes), for a smoke
run; its figures are not the ones the README quotes. Scripts that accept `--json PATH` hand over
their figures as JSON; for the others the printed report lines are kept in the JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = ROOT / "ci" / "bench"
DEFAULT_JSON = BENCH_DIR / "results.json"

Figures = dict[str, Any]


@dataclass(frozen=True)
class Benchmark:
    """One script, its arguments in each mode, and how to sum it up in one line."""

    name: str
    script: str
    what: str
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()
    timeout: float = 1800.0
    headline: Callable[[Figures | None, list[str]], str] | None = None


@dataclass
class Outcome:
    """What one benchmark run gave."""

    status: str  # ok | failed | timed out | not available
    seconds: float = 0.0
    command: list[str] = field(default_factory=list)
    figures: Figures | None = None
    output: list[str] = field(default_factory=list)
    headline: str = ""


# ----------------------------------------------------------------------------- headlines


def _last_matching(lines: list[str], pattern: str) -> str:
    for line in reversed(lines):
        if re.search(pattern, line):
            return line.strip()
    return lines[-1].strip() if lines else ""


def _waits(fig: Figures | None, lines: list[str]) -> str:
    if not fig:
        return _last_matching(lines, r"facade")
    f, k, p = fig["facade"], fig["kubectl_wait"], fig["polling_2s"]
    window = fig["window_s"]
    return (
        f"lag p50/p99 {f['lag_s']['p50'] * 1000:.0f}/{f['lag_s']['p99'] * 1000:.0f} ms; "
        f"kubectl wait x{k['lag_s']['p50'] / f['lag_s']['p50']:.1f}, "
        f"2 s polling x{p['lag_s']['p50'] / f['lag_s']['p50']:.1f} the facade's p50; "
        f"requests per {window:.0f} s wait: facade {f['requests_per_wait_window']}, "
        f"kubectl {k['requests_per_wait_window']}, polling {p['requests_per_wait_window']}"
    )


def _checks(fig: Figures | None, lines: list[str]) -> str:
    if not fig:
        return _last_matching(lines, r"slowest check")

    def median(key: str) -> str:
        value = fig.get(key) or {}
        return f"{value['median']:.2f} s" if "median" in value else "n/a"

    nodes = [k for k in fig if k.startswith("assert_node_") and "median" in fig[k]]
    slowest_node = max((fig[k]["median"] for k in nodes), default=float("nan"))
    return (
        f"{fig['nodes']} nodes, {fig['pods']} pods: assert_pods_rescheduled over all pods "
        f"{median('assert_pods_rescheduled_all_s')} (bare list {median('list_all_pods_s')}; "
        f"{median('rescheduled_all_gc_paused_s')} with the GC paused), over a 30-pod "
        f"workload {median('assert_pods_rescheduled_30_s')}; node checks <= "
        f"{slowest_node:.2f} s; peak RSS while a check ran "
        f"{fig.get('rss_peak_checks_mib', fig.get('rss_peak_mib', 0)):.0f} MiB"
    )


def _kill(fig: Figures | None, lines: list[str]) -> str:
    if not fig:
        return _last_matching(lines, r"replicas Ready")
    r = fig["replicas_ready"]
    failed = len(fig.get("failed_trials") or [])
    return (
        f"kill to replicas Ready {r['measured_s']:.2f} s: {r['overhead_s']:+.2f} s over the "
        f"{r['minimum_s']:.1f} s minimum (x{r['ratio']:.2f}; upstream's structure gives "
        f"{r.get('upstream_mean_s', 0):.1f} s on average)"
        + (
            f"; taint to Ready {fig['taint_to_ready']['overhead_s']:+.2f} s over "
            "toleration + start delay"
            if "taint_to_ready" in fig
            else ""
        )
        + (f"; {failed} of {fig['trials']} trials timed out" if failed else "")
    )


def _agents(fig: Figures | None, lines: list[str]) -> str:
    if not fig:
        return _last_matching(lines, r"hollow")
    parts = []
    for label in ("three", "hollow100", "hollow1000"):
        if label in fig:
            f = fig[label]
            text = (
                f"{label}: {f['nodes']} nodes, {f['pods']} pods, agents "
                f"{f['agent_cpu_pct_of_core']:.1f}% of a core, {f['agent_rss_mib']:.0f} MiB"
            )
            if "start_rate_pods_per_s" in f:
                text += (
                    f", pods started at {f['start_rate_pods_per_s']:.0f}/s, oldest lease "
                    f"{f['oldest_lease_age_s_while_starting']:.1f} s while starting "
                    f"(duration {f['lease_duration_s']:.0f} s, profile {f.get('profile', '?')})"
                )
            parts.append(text)
    ratio = fig.get("hollow100_rss_per_node_vs_process_per_node")
    if ratio is not None:
        parts.append(f"hollow RSS per node x{ratio:.3f} of a process per node")
    return "; ".join(parts)


def _line(pattern: str) -> Callable[[Figures | None, list[str]], str]:
    return lambda fig, lines: _last_matching(lines, pattern)


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark(
        "waits",
        "bench_waits.py",
        "wait detection lag beside kubectl wait and 2 s polling; API requests per wait",
        quick=("--trials", "50", "--kubectl-trials", "10", "--poll-trials", "5", "--window", "15"),
        headline=_waits,
    ),
    Benchmark(
        "apiserver",
        "bench_apiserver.py",
        "the simulated API server: writes/s, write and list latency, watch fan-out",
        quick=(
            "--pods",
            "3000",
            "--nodes",
            "100",
            "--watchers",
            "20",
            "--write-seconds",
            "2",
            "--paced-seconds",
            "2",
            "--list-repeats",
            "10",
        ),
        headline=_line(r"writes/s sustained"),
    ),
    Benchmark(
        "controllers",
        "bench_controllers.py",
        "the simulator's controllers at 1,000 nodes and 30,000 pods (CPU per pass, memory)",
        quick=("--nodes", "100", "--pods", "3000", "--window", "5", "--kill", "3"),
        headline=_line(r"monitor pass cost ratio"),
    ),
    Benchmark(
        "agents",
        "bench_agents.py",
        "node agents: CPU and memory of processes and hollow nodes (100, 1,000)",
        quick=("--window", "5", "--phases", "three,hollow100"),
        headline=_agents,
    ),
    Benchmark(
        "checks_scale",
        "bench_checks_scale.py",
        "checks over 1,000 nodes and 30,000 pods; the plugin's memory",
        quick=("--nodes", "100", "--pods", "3000", "--repeat", "3"),
        headline=_checks,
    ),
    Benchmark(
        "kill_ready",
        "bench_kill_ready.py",
        "kill to replicas Ready elsewhere, beside the theoretical minimum",
        quick=("--trials", "1"),
        headline=_kill,
    ),
    Benchmark(
        "journal",
        "bench_journal.py",
        "what journaling costs a disruption: cordon + undo, plain and journaled",
        quick=("10",),
        headline=_line(r"^ratio:"),
    ),
    Benchmark(
        "crash_drill",
        "bench_crash_drill.py",
        "the whole runbook SIGKILLed at random points, then `k8sdr recover`: recovered R/N",
        full=("--runs", "20"),
        quick=("--runs", "3"),
        headline=_line(r"^recovered "),
    ),
    Benchmark(
        "xdist",
        "bench_xdist.py",
        "`pytest -n 4 experiments/` beside the serial run (each worker its own simulated cluster)",
        quick=(
            "--workers",
            "2",
            "experiments/test_node_failure.py",
            "experiments/test_partition.py",
        ),
        timeout=3600.0,
        headline=_line(r"^ratio:"),
    ),
    Benchmark(
        "scale",
        "bench_scale.py",
        "the simulator at 1,000 hollow nodes: API server RSS, create-to-Running, nodeName lists",
        full=("--nodes", "1000", "--pods", "100000", "--baseline-pods", "30000"),
        quick=("--nodes", "100", "--pods", "3000", "--window", "3", "--lists", "10"),
        headline=_line(r"pods on .* nodes: API server RSS"),
    ),
    Benchmark(
        "scheduler",
        "bench_scheduler.py",
        "pods placed per second at 1,000 nodes: anti-affinity + zone spread beside plain",
        quick=("--nodes", "100", "--pods", "200", "--group", "50"),
        headline=_line(r"^ratio:"),
    ),
    Benchmark(
        "recorder",
        "bench_recorder.py",
        "an experiment's wall time with the recorder on and off (`--k8sdr-recorder`)",
        quick=("--rounds", "1"),
        headline=_line(r"^ratio:"),
    ),
    Benchmark(
        "probe",
        "bench_probe.py",
        "the traffic probe's throughput through a real nginx",
        quick=("--seconds", "1"),
        headline=_line(r"sustained"),
    ),
)


# ----------------------------------------------------------------------------- running


def _stream(
    argv: Sequence[str], timeout: float, prefix: str = "  | ", env: dict[str, str] | None = None
) -> tuple[int | None, list[str], float]:
    """Run `argv`, echoing its output as it comes; (exit status or None on timeout, lines, s)."""
    began = time.monotonic()
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        start_new_session=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            print(prefix + line, end="", flush=True)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        code: int | None = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        # SIGTERM first: the benchmarks stop the clusters they started on SIGTERM.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        code = None
    reader.join(10)
    if proc.stdout is not None:
        proc.stdout.close()
    return code, lines, time.monotonic() - began


def _accepts_json(script: Path) -> bool:
    try:
        done = subprocess.run(
            [sys.executable, str(script), "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0 and "--json" in done.stdout


def _printed_json(lines: list[str]) -> Figures | None:
    """The last JSON object a script printed on its own lines (e.g. json.dumps(indent=2))."""
    for start in range(len(lines) - 1, -1, -1):
        if lines[start].startswith("{"):
            try:
                loaded = json.loads("\n".join(lines[start:]))
            except ValueError:
                continue
            return loaded if isinstance(loaded, dict) else None
    return None


def run_benchmark(bench: Benchmark, quick: bool, workdir: Path) -> Outcome:
    """Run one benchmark script and collect what it printed or wrote."""
    script = BENCH_DIR / bench.script
    if not script.exists():
        return Outcome("not available", headline=f"{script.relative_to(ROOT)} does not exist")
    argv = [sys.executable, str(script), *(bench.quick if quick else bench.full)]
    json_path = workdir / f"{bench.name}.json"
    if _accepts_json(script):
        argv += ["--json", str(json_path)]
    timeout = min(bench.timeout, 900.0) if quick else bench.timeout
    print(f"\n== {bench.name}: {bench.what}\n   {' '.join(argv[1:])}", flush=True)
    code, lines, seconds = _stream(argv, timeout)
    outcome = Outcome("ok", seconds, argv[1:], output=lines)
    if code is None:
        outcome.status = f"timed out after {timeout:.0f} s"
    elif code != 0:
        outcome.status = f"failed (exit {code})"
    if json_path.exists():
        outcome.figures = json.loads(json_path.read_text())
    else:
        outcome.figures = _printed_json(lines)
    if outcome.status == "ok" and bench.headline is not None:
        try:
            outcome.headline = bench.headline(outcome.figures, lines)
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
            outcome.headline = f"(figures not summarised: {exc!r})"
    elif lines:
        outcome.headline = lines[-1].strip()
    return outcome


SESSION_COST_TEST = """
def test_a_session_on_the_simulator(cluster):
    assert cluster.nodes()
"""


def run_experiments(workdir: Path) -> Outcome:
    """Wall time of `pytest experiments/` on the simulator, beside a trivial session's."""
    experiments = ROOT / "experiments"
    tests = sorted(experiments.glob("test_*.py")) if experiments.is_dir() else []
    if not tests:
        return Outcome("not available", headline="experiments/ holds no tests yet")
    pytest = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"]
    baseline_dir = workdir / "session-cost"
    baseline_dir.mkdir()
    (baseline_dir / "test_session_cost.py").write_text(SESSION_COST_TEST)
    print("\n== experiments: wall time of `pytest experiments/` on the simulator", flush=True)
    print("   baseline: one trivial test using the `cluster` fixture (a whole session)")
    code, base_lines, base_s = _stream(
        [*pytest, "--rootdir", str(baseline_dir), str(baseline_dir)], 600
    )
    if code != 0:
        return Outcome(
            "failed (baseline session)", base_s, output=base_lines, headline=base_lines[-1:][0]
        )
    argv = [*pytest, "experiments/"]
    print(f"   {' '.join(argv[1:])}", flush=True)
    code, lines, seconds = _stream(argv, 1800)
    summary = _last_matching(lines, r"passed|failed|error")
    status = "ok" if code == 0 else ("timed out" if code is None else f"failed (exit {code})")
    figures = {
        "wall_s": seconds,
        "session_baseline_s": base_s,
        "ratio": seconds / base_s,
        "test_files": len(tests),
        "summary": summary,
    }
    return Outcome(
        status,
        seconds,
        argv[1:],
        figures,
        lines,
        f"{seconds:.0f} s wall, x{seconds / base_s:.1f} a one-test session ({base_s:.1f} s); "
        f"{summary}",
    )


# ----------------------------------------------------------------------------- report


def summary_rows(results: dict[str, Outcome]) -> list[tuple[str, str, str, str]]:
    """(benchmark, status, seconds, headline) per benchmark."""
    return [
        (name, o.status, f"{o.seconds:.0f}", re.sub(r"\s+", " ", o.headline).replace("|", "/"))
        for name, o in results.items()
    ]


def print_summary(results: dict[str, Outcome], quick: bool) -> None:
    """The summary table on the terminal."""
    print(f"\n== summary ({'quick' if quick else 'full'} run)")
    width = max(len(n) for n in results)
    for name, status, seconds, headline in summary_rows(results):
        print(f"{name:{width}}  {status:14}  {seconds:>5} s  {headline}")


def markdown(results: dict[str, Outcome], meta: dict[str, Any]) -> str:
    """The summary as a Markdown table (for the README)."""
    lines = [
        f"Run of {meta['finished'][:16].replace('T', ' ')} UTC, {meta['mode']} mode, "
        f"{meta['cores']} cores, Python {meta['python']}:",
        "",
        "| benchmark | status | time | headline figures |",
        "|---|---|---|---|",
    ]
    for name, status, seconds, headline in summary_rows(results):
        lines.append(f"| {name} | {status} | {seconds} s | {headline} |")
    if meta.get("note"):
        lines += ["", str(meta["note"])]
    return "\n".join(lines) + "\n"


def resummarise(path: Path, markdown_path: Path | None) -> int:
    """Print the summary of a previous run (headlines recomputed) and its Markdown table."""
    data = json.loads(path.read_text())
    by_name = {b.name: b for b in BENCHMARKS}
    results: dict[str, Outcome] = {}
    for name, raw in data["benchmarks"].items():
        outcome = Outcome(**raw)
        bench = by_name.get(name)
        if outcome.status == "ok" and bench is not None and bench.headline is not None:
            outcome.headline = bench.headline(outcome.figures, outcome.output)
        results[name] = outcome
    print_summary(results, data["meta"]["mode"] == "quick")
    if markdown_path:
        markdown_path.write_text(markdown(results, data["meta"]))
        print(f"summary table written to {markdown_path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; returns 1 when any failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every benchmark smaller")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where figures go")
    parser.add_argument("--markdown", type=Path, help="also write the summary table here")
    names = [b.name for b in BENCHMARKS] + ["experiments"]
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(names)}")
    parser.add_argument("--skip", default="", help="comma-separated benchmarks to leave out")
    parser.add_argument(
        "--from-json",
        type=Path,
        metavar="PATH",
        help="run nothing: summarise a previous results file again (summary, --markdown)",
    )
    args = parser.parse_args(argv)
    if args.from_json:
        return resummarise(args.from_json, args.markdown)
    wanted = set(args.only.split(",")) if args.only else set(names)
    wanted -= set(filter(None, args.skip.split(",")))
    unknown = wanted - set(names)
    if unknown:
        parser.error(
            f"unknown benchmark(s) {', '.join(sorted(unknown))}; known: {', '.join(names)}"
        )
    # SIGTERM stops the benchmark running now (through the SIGTERM below) and reports.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = datetime.now(UTC)
    results: dict[str, Outcome] = {}
    with tempfile.TemporaryDirectory(prefix="k8sdr-bench-") as tmp:
        workdir = Path(tmp)
        for bench in BENCHMARKS:
            if bench.name in wanted:
                results[bench.name] = run_benchmark(bench, args.quick, workdir)
        if "experiments" in wanted:
            results["experiments"] = run_experiments(workdir)
    meta = {
        "started": started.isoformat(),
        "finished": datetime.now(UTC).isoformat(),
        "mode": "quick" if args.quick else "full",
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.platform(),
        "load_average": os.getloadavg(),
    }
    print_summary(results, args.quick)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {"meta": meta, "benchmarks": {n: o.__dict__ for n, o in results.items()}}, indent=2
        )
        + "\n"
    )
    print(f"\nfigures written to {args.json}")
    if args.markdown:
        args.markdown.write_text(markdown(results, meta))
        print(f"summary table written to {args.markdown}")
    return 0 if all(o.status in ("ok", "not available") for o in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
