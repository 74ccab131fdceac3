"""Benchmark: how soon a wait notices a change, and how many API requests waiting costs.

    .venv/bin/python ci/bench/bench_waits.py [--trials 200] [--kubectl-trials 40]
        [--poll-trials 20] [--window 60] [--json PATH]

On a simulated cluster with one worker (the `fast` profile), the same condition (a label on
the worker's Node reaching a value) is awaited three ways, in one run:

- the plugin's facade, `Cluster.wait_node` (list, then watch from the list's resourceVersion);
- `kubectl wait --for=jsonpath=...` (a process per wait, as a shell script would use it);
- a polling loop that GETs the Node every 2 seconds (the baseline of hand-written waits).

Detection lag: from the moment the PATCH that makes the condition true is sent to the moment
the waiter returns (kubectl: its process exits). Each trial starts the waiter first and makes
the change once it is watching (for kubectl: once its `-v=6` log shows the watch request), or
at a random phase of the polling loop. Requests: all three wait `--window` seconds, together, on
a condition that never holds; the facade counts its own calls (`Cluster.requests`), kubectl's
are the request lines of its `-v=6` log, the loop counts its GETs.

Prints p50/p99 lags and request counts with ratios to the facade; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from pytest_k8sdr import Cluster, NodeView, WaitTimeout
from pytest_k8sdr.sim import SimCluster

NODE = "k8sdr-worker"
KEY = "k8sdr-bench"
POLL_INTERVAL = 2.0
# kubectl -v=6 logs one line per request: "GET https://... 200 OK in 3 milliseconds" (klog
# text) or `"Response" verb="GET" url="https://..."` (structured logging, kubectl >= 1.30).
REQUEST_LINE = re.compile(
    r'(?:\b(?:GET|POST|PUT|PATCH|DELETE) https?://|verb="(?:GET|POST|PUT|PATCH|DELETE)" url=")'
)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), interpolated."""
    if len(values) == 1:
        return values[0]
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


class Bench:
    """The cluster, a writer and the three waiters."""

    def __init__(self, sim: SimCluster, kubectl: str) -> None:
        self.sim = sim
        self.kubectl = [kubectl, "--kubeconfig", str(sim.kubeconfig_path)]
        self.waiter = Cluster.from_kubeconfig(sim.kubeconfig_path)
        self.writer = Cluster.from_kubeconfig(sim.kubeconfig_path)
        self.poller = Cluster.from_kubeconfig(sim.kubeconfig_path)

    def close(self) -> None:
        """Release the clients."""
        for cluster in (self.waiter, self.writer, self.poller):
            cluster.close()

    def set_label(self, value: str) -> float:
        """PATCH the label; returns when the PATCH was sent (perf_counter)."""
        sent = time.perf_counter()
        self.writer.call(
            self.writer.core.patch_node,
            NODE,
            {"metadata": {"labels": {KEY: value}}},
            _preload_content=False,
        )
        return sent

    def holds(self, value: str) -> Callable[[NodeView | None], bool]:
        """The condition: the label has `value`."""
        return lambda n: n is not None and n.labels.get(KEY) == value

    # -- the facade ------------------------------------------------------------------------

    def facade_trial(self, value: str) -> tuple[float, int]:
        """(lag, requests) of one `Cluster.wait_node`."""
        done: dict[str, Any] = {}

        def wait() -> None:
            result = self.waiter.wait_node(
                NODE, self.holds(value), timeout=30, description=f"{KEY}={value}"
            )
            done["at"] = time.perf_counter()
            done["requests"] = result.requests

        thread = threading.Thread(target=wait)
        thread.start()
        # The wait lists, then watches: a quarter second is ample on loopback (its list takes
        # a few ms); a change before the watch starts would only be seen by the list anyway.
        time.sleep(0.25)
        sent = self.set_label(value)
        thread.join(35)
        return done["at"] - sent, int(done["requests"])

    # -- kubectl wait ----------------------------------------------------------------------

    def kubectl_wait(self, value: str, timeout: float) -> subprocess.Popen[str]:
        """Start `kubectl wait` for the label at -v=6."""
        return subprocess.Popen(
            [
                *self.kubectl,
                "wait",
                f"node/{NODE}",
                f"--for=jsonpath={{.metadata.labels.{KEY}}}={value}",
                f"--timeout={int(timeout)}s",
                "-v=6",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def kubectl_trial(self, value: str) -> tuple[float, int]:
        """(lag, requests) of one `kubectl wait`."""
        proc = self.kubectl_wait(value, 30)
        watching = threading.Event()
        lines: list[str] = []

        def read() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                lines.append(line)
                if "watch=true" in line and REQUEST_LINE.search(line):
                    watching.set()

        reader = threading.Thread(target=read)
        reader.start()
        if not watching.wait(20):
            proc.kill()
            proc.wait()
            reader.join()
            raise SystemExit("kubectl wait never started its watch:\n" + "".join(lines[-20:]))
        sent = self.set_label(value)
        proc.wait(35)
        exited = time.perf_counter()
        reader.join()
        if proc.returncode != 0:
            raise SystemExit(f"kubectl wait failed ({proc.returncode}):\n" + "".join(lines[-20:]))
        return exited - sent, sum(1 for line in lines if REQUEST_LINE.search(line))

    # -- a polling loop --------------------------------------------------------------------

    def poll_until(self, value: str, deadline: float, stop: threading.Event) -> tuple[float, int]:
        """GET the Node every 2 s until the label has `value`: (when seen, GETs made)."""
        gets = 0
        while not stop.is_set() and time.perf_counter() < deadline:
            gets += 1
            try:
                resp = self.poller.core.read_node(NODE, _preload_content=False)
                labels = json.loads(resp.data)["metadata"].get("labels") or {}
            except ApiException:
                labels = {}
            if labels.get(KEY) == value:
                return time.perf_counter(), gets
            stop.wait(POLL_INTERVAL)
        return float("nan"), gets

    def poll_trial(self, value: str) -> tuple[float, int]:
        """(lag, GETs) of one polling wait, the change landing at a random phase."""
        done: dict[str, Any] = {}
        stop = threading.Event()

        def run() -> None:
            done["at"], done["gets"] = self.poll_until(value, time.perf_counter() + 30, stop)

        thread = threading.Thread(target=run)
        thread.start()
        time.sleep(random.uniform(0.1, POLL_INTERVAL + 0.1))
        sent = self.set_label(value)
        thread.join(35)
        return done["at"] - sent, int(done["gets"])

    # -- requests during a long wait -------------------------------------------------------

    def requests_during(self, window: float) -> dict[str, int]:
        """API requests each waiter makes while waiting `window` s for what never happens."""
        counts: dict[str, int] = {}
        never = "never-" + str(os.getpid())
        stop = threading.Event()

        def facade() -> None:
            before = self.waiter.requests
            with contextlib.suppress(WaitTimeout):
                self.waiter.wait_node(NODE, self.holds(never), timeout=window, description="x")
            counts["facade"] = self.waiter.requests - before

        def poll() -> None:
            counts["polling_2s"] = self.poll_until(never, time.perf_counter() + window, stop)[1]

        proc = self.kubectl_wait(never, window)
        threads = [threading.Thread(target=facade), threading.Thread(target=poll)]
        for thread in threads:
            thread.start()
        _, err = proc.communicate(timeout=window + 30)
        for thread in threads:
            thread.join(window + 30)
        counts["kubectl_wait"] = sum(1 for line in err.splitlines() if REQUEST_LINE.search(line))
        return counts


def lag_figures(samples: list[float]) -> dict[str, float]:
    """p50, p99, mean and max of lags in seconds."""
    return {
        "p50": percentile(samples, 50),
        "p99": percentile(samples, 99),
        "mean": statistics.fmean(samples),
        "max": max(samples),
    }


def run(args: argparse.Namespace, kubectl: str) -> dict[str, Any]:
    """Every trial, on one simulated cluster."""
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-waits-") as tmp:
        sim = SimCluster.start(Path(tmp), workers=1, profile="fast")
        bench = Bench(sim, kubectl)
        try:
            for name, trial, count in (
                ("facade", bench.facade_trial, args.trials),
                ("kubectl_wait", bench.kubectl_trial, args.kubectl_trials),
                ("polling_2s", bench.poll_trial, args.poll_trials),
            ):
                lags, requests = [], []
                for i in range(count):
                    lag, made = trial(f"{name}-{i}")
                    lags.append(lag)
                    requests.append(made)
                figures[name] = {
                    "trials": count,
                    "lag_s": lag_figures(lags),
                    "requests_per_trial": statistics.fmean(requests),
                }
                p50_ms = figures[name]["lag_s"]["p50"] * 1000
                print(f"  {name}: {count} trials, p50 {p50_ms:.1f} ms", flush=True)
            window = bench.requests_during(args.window)
            for name, made in window.items():
                figures[name]["requests_per_wait_window"] = made
            figures["window_s"] = args.window
        finally:
            bench.close()
            sim.stop()
    return figures


def report(figures: dict[str, Any]) -> None:
    """Print the table, with ratios to the facade."""
    base = figures["facade"]
    window = figures["window_s"]
    print(
        f"\nwait detection lag (ms) and API requests per {window:.0f} s wait; ratio vs the facade"
    )
    print(
        f"{'waiter':14} {'trials':>6} {'p50':>8} {'p99':>8} {'p50 ratio':>10} "
        f"{'req/' + format(window, '.0f') + 's':>8} {'ratio':>7}"
    )
    for name in ("facade", "kubectl_wait", "polling_2s"):
        f = figures[name]
        p50, p99 = f["lag_s"]["p50"] * 1000, f["lag_s"]["p99"] * 1000
        ratio = f["lag_s"]["p50"] / base["lag_s"]["p50"]
        req = f["requests_per_wait_window"]
        req_ratio = req / max(base["requests_per_wait_window"], 1)
        print(
            f"{name:14} {f['trials']:>6} {p50:8.1f} {p99:8.1f} {ratio:9.1f}x "
            f"{req:>8} {req_ratio:6.1f}x"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200, help="facade trials")
    parser.add_argument("--kubectl-trials", type=int, default=40)
    parser.add_argument("--poll-trials", type=int, default=20)
    parser.add_argument("--window", type=float, default=60.0, help="seconds of the long wait")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if min(args.trials, args.kubectl_trials, args.poll_trials) < 1 or args.window < 2:
        parser.error("trial counts must be >= 1 and --window >= 2")
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        print("kubectl is not installed: it is the baseline of this benchmark", file=sys.stderr)
        return 2
    # SIGTERM (a CI timeout, run_all.py giving up) still stops the cluster in `finally`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(
        f"cores: {os.cpu_count()}; trials: facade {args.trials}, kubectl wait "
        f"{args.kubectl_trials}, polling {args.poll_trials}; long wait {args.window:.0f} s",
        flush=True,
    )
    figures = run(args, kubectl)
    report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
