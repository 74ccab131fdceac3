"""Benchmark: how fast the traffic probe can send through nginx, and what its timing adds.

Starts a real nginx on loopback (one worker) that answers like a pod, then prints:

- a baseline: a plain `http.client` loop (new connection per request, like the probe) against
  the same nginx: its requests/s and latency;
- the probe's recorded latency at a gentle rate against the baseline's (the overhead of the
  probe's own clock and event loop), as a ratio and in microseconds;
- the requests/s the probe sustains: for increasing target rates, the completed rate as a
  ratio of the target, with errors and skipped ticks.

Run: ``.venv/bin/python ci/bench/bench_probe.py [--seconds 2]``. Needs nginx on PATH.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pytest_k8sdr.lb import TrafficProbe

ADDRESS = "127.88.250.1"

CONF = """daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen {address}:{port} backlog=4096;
        location / {{
            add_header X-K8sdr-Pod default/web-0;
            add_header X-K8sdr-Node bench-node;
            default_type application/json;
            return 200 '{{"pod": "web-0", "namespace": "default", "node": "bench-node"}}';
        }}
    }}
}}
"""


def free_port() -> int:
    """A free TCP port on the benchmark's address."""
    with socket.socket() as s:
        s.bind((ADDRESS, 0))
        port: int = s.getsockname()[1]
        return port


def start_nginx(directory: Path, port: int) -> subprocess.Popen[bytes]:
    """Start nginx in `directory` and wait until it accepts connections."""
    conf = directory / "nginx.conf"
    conf.write_text(CONF.format(d=directory, address=ADDRESS, port=port))
    proc = subprocess.Popen(
        ["nginx", "-e", str(directory / "error.log"), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection((ADDRESS, port), timeout=0.5).close()
            return proc
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("nginx did not start") from None
            time.sleep(0.02)


def plain_client(port: int, seconds: float, rate: float | None = None) -> list[float]:
    """Latencies of a sequential http.client loop, one connection per request.

    With `rate`, requests are paced like the probe's (the loop sleeps between them), so that
    both pay the same cost of waking up.
    """
    latencies = []
    start = time.monotonic()
    end = start + seconds
    sent = 0
    while time.monotonic() < end:
        if rate is not None:
            time.sleep(max(0.0, start + sent / rate - time.monotonic()))
        sent += 1
        t = time.monotonic()
        conn = http.client.HTTPConnection(ADDRESS, port, timeout=2)
        conn.request("GET", "/", headers={"Connection": "close"})
        resp = conn.getresponse()
        resp.read()
        resp.getheader("X-K8sdr-Node")
        conn.close()
        latencies.append(time.monotonic() - t)
        if resp.status != 200:
            raise SystemExit(f"plain client got HTTP {resp.status}")
    return latencies


def probe_run(url: str, rate: float, seconds: float) -> tuple[int, int, int, list[float]]:
    """(completed, errors, skipped, latencies) of a probe run at `rate` for `seconds`."""
    probe = TrafficProbe(url, rate=rate, timeout=2.0, max_in_flight=2000)
    with probe:
        start = probe.now()
        probe.wait_settled(start + seconds, timeout=seconds + 10)
    summary = probe.summary(start, start + seconds)
    latencies = [r.latency for r in probe.records(start, start + seconds) if r.ok]
    return summary.requests - summary.errors, summary.errors, probe.skipped, latencies


def p50(values: list[float]) -> float:
    """The median, NaN for no values."""
    return statistics.median(values) if values else float("nan")


def main() -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each run")
    args = parser.parse_args()
    if shutil.which("nginx") is None:
        print("nginx is not installed", file=sys.stderr)
        return 2
    seconds: float = args.seconds
    with tempfile.TemporaryDirectory(prefix="k8sdr-bench-") as tmp:
        port = free_port()
        nginx = start_nginx(Path(tmp), port)
        try:
            url = f"http://{ADDRESS}:{port}/"
            print(f"cores: {os.cpu_count()}; nginx: 1 worker on {ADDRESS}:{port}")
            plain_client(port, 0.3)  # warm up
            base = plain_client(port, seconds)
            base_rps = len(base) / seconds
            base_p50 = p50(base)
            print(
                f"baseline http.client loop: {base_rps:8.0f} req/s, "
                f"latency p50 {base_p50 * 1e6:7.0f} us"
            )

            gentle = 100.0
            paced_p50 = p50(plain_client(port, seconds, rate=gentle))
            done, errors, _, lat = probe_run(url, gentle, seconds)
            probe_p50 = p50(lat)
            print(
                f"paced http.client loop at {gentle:.0f} req/s: latency p50 "
                f"{paced_p50 * 1e6:7.0f} us"
            )
            print(
                f"probe at {gentle:.0f} req/s: latency p50 {probe_p50 * 1e6:7.0f} us, "
                f"overhead x{probe_p50 / paced_p50:.2f} of the paced loop "
                f"({(probe_p50 - paced_p50) * 1e6:+.0f} us per request), "
                f"x{probe_p50 / base_p50:.2f} of the hot loop; errors {errors}"
            )

            best = 0.0
            for target in (500.0, 1000.0, 2000.0, 4000.0, 6000.0, 8000.0):
                done, errors, skipped, lat = probe_run(url, target, seconds)
                achieved = done / seconds
                print(
                    f"probe target {target:6.0f} req/s: achieved {achieved:7.0f} req/s "
                    f"(x{achieved / target:.2f} of target, x{achieved / base_rps:.2f} of "
                    f"baseline loop), errors {errors}, skipped {skipped}, "
                    f"p50 {p50(lat) * 1e6:7.0f} us"
                )
                if achieved >= 0.95 * target and errors == 0:
                    best = target
                else:
                    break
            print(
                f"sustained: {best:.0f} req/s (x{best / base_rps:.2f} of the baseline loop's rate)"
            )
        finally:
            nginx.terminate()
            nginx.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
