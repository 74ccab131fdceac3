"""An experiment's wall time with the recorder on and off, measured in the same run.

    .venv/bin/python ci/bench/bench_recorder.py [--rounds 3] [--json PATH] [PATH ...]

Runs the experiments (default: experiments/test_load_balancer.py) on the simulator with
`--k8sdr-recorder=on` and `=off`, alternating (on, off, off, on, ...) so that a change in the
machine's load falls on both alike, and prints for each setting the median session wall time
and the median of the tests' own time (setup, call and teardown, from the JUnit XML: a
session's fixed cost, launching the simulated cluster, left out), then the ratios on/off. The
recorder's cost is its four watches (nodes, and the namespace's pods, EndpointSlices and
Events) and the work of turning their events into transitions; the probe's traffic figures
are kept either way. Every run must pass.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(paths: list[str], recorder: str, scratch: Path, index: int) -> tuple[float, float]:
    """One pytest session: its wall time and the sum of its tests' times (JUnit XML)."""
    junit = scratch / f"junit-{index}-{recorder}.xml"
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *paths]
    argv += [f"--k8sdr-recorder={recorder}", f"--junitxml={junit}"]
    argv += [f"--k8sdr-journal={scratch / f'journal-{index}-{recorder}.jsonl'}"]
    began = time.monotonic()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False)
    wall = time.monotonic() - began
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"the run with the recorder {recorder} failed (exit {done.returncode})")
    cases = ET.parse(junit).getroot().iter("testcase")
    return wall, sum(float(case.get("time", "0")) for case in cases)


def main() -> int:
    """Run the sessions and print the figures; exit 1 (via SystemExit) when a run failed."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("paths", nargs="*", default=["experiments/test_load_balancer.py"])
    parser.add_argument("--rounds", type=int, default=3, help="sessions per setting (default: 3)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    print(f"cores: {os.cpu_count()}; experiments: {' '.join(args.paths)}", flush=True)
    order = [("on", "off") if i % 2 == 0 else ("off", "on") for i in range(args.rounds)]
    times: dict[str, list[tuple[float, float]]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory(prefix="k8sdr-bench-recorder-") as tmp:
        for i, pair in enumerate(order):
            for setting in pair:
                wall, tests = run(args.paths, setting, Path(tmp), i)
                times[setting].append((wall, tests))
                print(
                    f"round {i + 1} recorder {setting:3}: session {wall:6.1f} s, "
                    f"tests {tests:6.1f} s",
                    flush=True,
                )
    med = {
        f"{setting}_{what}_s": round(statistics.median(run[k] for run in runs), 2)
        for setting, runs in times.items()
        for k, what in ((0, "session"), (1, "tests"))
    }
    session = med["on_session_s"] / med["off_session_s"]
    tests = med["on_tests_s"] / med["off_tests_s"]
    figures = {"cores": os.cpu_count(), "rounds": args.rounds, "paths": args.paths, **med}
    figures.update(session_ratio=round(session, 3), tests_ratio=round(tests, 3))
    print(
        f"recorder on: session {med['on_session_s']} s, tests {med['on_tests_s']} s; "
        f"off: session {med['off_session_s']} s, tests {med['off_tests_s']} s (medians)"
    )
    print(f"ratio: recorder on/off {tests:.3f}x the tests' time, {session:.3f}x the session's")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
