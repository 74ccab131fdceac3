"""`pytest -n N experiments/` against the serial run, measured in the same run.

    .venv/bin/python ci/bench/bench_xdist.py [--workers 4] [--json PATH] [PATH ...]

Runs the experiments (default: experiments/) on the simulator twice, serially and with
pytest-xdist's `-n N` (each worker on a simulated cluster of its own), and prints both wall
times and their ratio (the target: at most 0.45x with 4 workers). Both runs must pass. Most of
an experiment is waiting on grace periods and tolerations, which is why workers overlap well
even on 2 cores; each worker pays for its own cluster (an API server and four node agents).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(argv: list[str]) -> tuple[float, str, int]:
    """Wall time, pytest's last summary line and exit status of one pytest run."""
    began = time.monotonic()
    done = subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False, env=os.environ
    )
    seconds = time.monotonic() - began
    lines = [line for line in done.stdout.splitlines() if re.search(r"passed|failed|error", line)]
    summary = lines[-1].strip("= ") if lines else done.stdout[-400:]
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
    return seconds, summary, done.returncode


def main() -> int:
    """Run both and print the figures; exit 1 when either run failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=["experiments/"])
    parser.add_argument("--workers", type=int, default=4, help="pytest -n N (default: 4)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    pytest = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args.paths]
    print(f"cores: {os.cpu_count()}; experiments: {' '.join(args.paths)}", flush=True)
    serial_s, serial_summary, serial_code = run(pytest)
    print(f"serial:          {serial_s:7.1f} s  ({serial_summary})", flush=True)
    xdist_s, xdist_summary, xdist_code = run([*pytest, "-n", str(args.workers)])
    print(f"-n {args.workers}:            {xdist_s:7.1f} s  ({xdist_summary})", flush=True)
    ratio = xdist_s / serial_s
    print(f"ratio: -n {args.workers} takes {ratio:.2f}x the serial wall time (target <= 0.45x)")
    figures = {
        "cores": os.cpu_count(),
        "workers": args.workers,
        "serial_s": round(serial_s, 2),
        "xdist_s": round(xdist_s, 2),
        "ratio": round(ratio, 3),
        "serial_summary": serial_summary,
        "xdist_summary": xdist_summary,
    }
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0 if serial_code == 0 and xdist_code == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
