"""A Prometheus server this run starts on loopback, scraping the simulated pods.

Debian's `prometheus` (2.42) has no service discovery for a simulated cluster, so the plugin
discovers for it: it writes a file_sd target file from the pods' IPs and ports (job `pods`,
labels `namespace`, `pod`, `node`); job `nginx` reads `targets/nginx-*.json` files. The process
is journaled before it starts (`ManagedPrometheusRunning`), so teardown, SIGTERM and `k8sdr
recover` stop it; it is known by its config file on its command line, never by a pid alone.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_k8sdr.errors import PrometheusError
from pytest_k8sdr.processes import free_port, pids_running, spawn_daemon, stop_process
from pytest_k8sdr.undo import Disruption, UndoEntry, UndoEnv, UndoStack, disruption_kind

if TYPE_CHECKING:
    from pytest_k8sdr.cluster import Cluster

log = logging.getLogger(__name__)

PROMETHEUS = "prometheus"
#: How often the managed server scrapes and the pods' targets are rediscovered (seconds).
SCRAPE_INTERVAL = 1.0

Target = tuple[str, Mapping[str, str]]  # "address:port", labels


def write_targets(path: Path, targets: Iterable[Target]) -> None:
    """Write a file_sd target file atomically (Prometheus may read it at any moment)."""
    doc = [{"targets": [address], "labels": dict(labels)} for address, labels in targets]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
    os.replace(tmp, path)


def pod_targets(cluster: Cluster) -> list[Target]:
    """Every running pod with an IP and a TCP containerPort: its first port, with its labels."""
    found: list[Target] = []
    for pod in cluster.list_raw("pods").get("items") or []:
        status, meta = pod.get("status") or {}, pod["metadata"]
        ip = status.get("podIP")
        ports = sorted(
            int(p["containerPort"])
            for c in (pod.get("spec") or {}).get("containers") or []
            for p in c.get("ports") or []
            if p.get("containerPort") and p.get("protocol", "TCP") == "TCP"
        )
        if status.get("phase") != "Running" or not ip or not ports or meta.get("deletionTimestamp"):
            continue
        labels = {
            "namespace": meta.get("namespace", ""),
            "pod": meta["name"],
            "node": (pod.get("spec") or {}).get("nodeName") or "",
        }
        found.append((f"{ip}:{ports[0]}", labels))
    return sorted(found)


def render_config(directory: Path, interval: float = SCRAPE_INTERVAL) -> str:
    """prometheus.yml: the pods' and the exporters' target files, scraped every `interval`."""
    every = f"{int(interval * 1000)}ms"
    targets = directory / "targets"
    return f"""global:
  scrape_interval: {every}
  scrape_timeout: {every}
  evaluation_interval: {every}
scrape_configs:
  - job_name: pods
    file_sd_configs:
      - files: ["{targets}/pods.json"]
        refresh_interval: {every}
  - job_name: nginx
    file_sd_configs:
      - files: ["{targets}/nginx-*.json"]
        refresh_interval: {every}
"""


def _wait_http(url: str, timeout: float, what: str, marker: str) -> None:
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not pids_running(marker):
            raise PrometheusError(f"{what} exited at start")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError as exc:
            last = exc
        pause.wait(0.1)
    raise PrometheusError(f"{what} did not answer {url} within {timeout:g}s: {last}")


class ManagedPrometheus:
    """Debian's Prometheus on a free loopback port, its data and targets under `directory`.

    `start` journals it on `undo` before spawning it; `discover(cluster)` keeps the pods'
    target file up to date until `close`.
    """

    def __init__(self, directory: Path, undo: UndoStack, *, address: str = "127.0.0.1") -> None:
        if shutil.which(PROMETHEUS) is None:
            raise PrometheusError(
                "prometheus is not installed (Debian package prometheus; see ci/setup)"
            )
        self.directory = directory
        (directory / "targets").mkdir(parents=True, exist_ok=True)
        self.config = directory / "prometheus.yml"
        self.config.write_text(render_config(directory))
        write_targets(directory / "targets" / "pods.json", [])
        self.address = f"{address}:{free_port(address)}"
        self.url = f"http://{self.address}"
        self.undo = undo
        self._entry: UndoEntry | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> ManagedPrometheus:
        """Start the server and wait until it is ready."""
        self._entry = self.undo.push(ManagedPrometheusRunning(str(self.config), self.url))
        spawn_daemon(
            [
                PROMETHEUS,
                f"--config.file={self.config}",
                f"--storage.tsdb.path={self.directory / 'data'}",
                f"--web.listen-address={self.address}",
                "--storage.tsdb.retention.time=2h",
                "--log.level=warn",
            ],
            self.directory / "prometheus.log",
        )
        try:
            _wait_http(
                f"{self.url}/-/ready", timeout, f"prometheus at {self.url}", str(self.config)
            )
        except PrometheusError as exc:
            log_text = (self.directory / "prometheus.log").read_text(errors="replace")[-2000:]
            self.close()
            raise PrometheusError(f"{exc}\n{log_text}") from None
        return self

    def targets_file(self, name: str) -> Path:
        """The target file `name` (``nginx-<id>.json`` for an exporter's)."""
        return self.directory / "targets" / name

    def discover(self, cluster: Cluster, interval: float = SCRAPE_INTERVAL) -> None:
        """Keep the pods' target file up to date from the cluster, every `interval` seconds."""
        path = self.targets_file("pods.json")

        def loop() -> None:
            written: list[Target] | None = None
            while True:
                try:
                    targets = pod_targets(cluster)
                    if targets != written:
                        write_targets(path, targets)
                        written = targets
                except Exception:  # the API may be down mid-experiment: try again
                    log.debug("pod discovery failed", exc_info=True)
                if self._stop.wait(interval):
                    return

        self._thread = threading.Thread(target=loop, name="k8sdr-prometheus-sd", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop discovering and stop the server, through its undo entry (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        entry, self._entry = self._entry, None
        if entry is not None:
            self.undo.run(entry)


@disruption_kind
@dataclass(frozen=True)
class ManagedPrometheusRunning(Disruption):
    """A managed Prometheus, known by its config file; undone by stopping it."""

    kind = "managed-prometheus"
    disruptive = False
    config: str
    url: str

    def summary(self) -> str:
        """``start a managed Prometheus at URL``."""
        return f"start a managed Prometheus at {self.url} ({self.config})"

    def undoing(self) -> str:
        """``stop the managed Prometheus at URL``."""
        return f"stop the managed Prometheus at {self.url}"

    def undo(self, env: UndoEnv) -> None:
        """Stop every process running that config (none: already stopped)."""
        for pid in pids_running(f"--config.file={self.config}"):
            stop_process(pid, self.config)
