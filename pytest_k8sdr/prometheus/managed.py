"""A Prometheus server this run starts on loopback, scraping the simulated pods.

Debian's `prometheus` (2.42) has no service discovery for a simulated cluster, so the plugin
discovers for it: it writes a file_sd target file from the pods' IPs and ports (job `pods`,
labels `namespace`, `pod`, `node`). A managed nginx is scraped through Debian's
`prometheus-nginx-exporter` reading its stub_status (`scrape_nginx`: job `nginx`, one
`targets/nginx-<port>.json` per exporter). Each process is journaled before it starts
(`ManagedPrometheusRunning`, `NginxExporterRunning`), so teardown, SIGTERM and `k8sdr recover`
stop it: by the pid `spawn_daemon` wrote, once its command line shows it is still ours.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_k8sdr.errors import PrometheusError
from pytest_k8sdr.processes import free_port, running, spawn_daemon, stop_daemon
from pytest_k8sdr.undo import Disruption, UndoEntry, UndoEnv, UndoStack, disruption_kind

if TYPE_CHECKING:
    from pytest_k8sdr.cluster import Cluster

log = logging.getLogger(__name__)

PROMETHEUS = "prometheus"
NGINX_EXPORTER = "prometheus-nginx-exporter"
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


def wait_http(url: str, timeout: float, what: str, alive: Callable[[], bool]) -> None:
    """Wait until `url` answers 200; PrometheusError when `alive()` turns False or at `timeout`."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not alive():
            raise PrometheusError(f"{what} exited at start")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            exc.close()  # its response holds the connection open until closed
            last = exc
        except OSError as exc:
            last = exc
        pause.wait(0.1)
    raise PrometheusError(f"{what} did not answer {url} within {timeout:g}s: {last}")


class ManagedPrometheus:
    """Debian's Prometheus on a free loopback port, its data and targets under `directory`.

    `start` journals it on `undo` before spawning it; `discover(cluster)` keeps the pods'
    target file up to date until `close`; `scrape_nginx` adds a managed nginx, through an
    exporter of its own.
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
        pid_file = self.directory / "prometheus.pid"
        self._entry = self.undo.push(
            ManagedPrometheusRunning(str(self.config), str(pid_file), self.url)
        )
        pid = spawn_daemon(
            [
                PROMETHEUS,
                f"--config.file={self.config}",
                f"--storage.tsdb.path={self.directory / 'data'}",
                f"--web.listen-address={self.address}",
                "--storage.tsdb.retention.time=2h",
                "--log.level=warn",
            ],
            self.directory / "prometheus.log",
            pid_file,
        )
        try:
            wait_http(
                f"{self.url}/-/ready",
                timeout,
                f"prometheus at {self.url}",
                lambda: running(pid),
            )
        except PrometheusError as exc:
            log_text = (self.directory / "prometheus.log").read_text(errors="replace")[-2000:]
            self.close()
            raise PrometheusError(f"{exc}\n{log_text}") from None
        return self

    def targets_file(self, name: str) -> Path:
        """The target file `name` (``nginx-<id>.json`` for an exporter's)."""
        return self.directory / "targets" / name

    def scrape_nginx(
        self,
        status_url: str,
        labels: Mapping[str, str],
        undo: UndoStack,
        *,
        address: str = "127.0.0.1",
        timeout: float = 30.0,
    ) -> str:
        """Scrape the nginx whose stub_status is `status_url`, through Debian's nginx exporter.

        The exporter is journaled on `undo` (the test's, after its nginx: undone before it)
        and listed in its own target file, with `labels`. Returns the exporter's address.
        """
        if shutil.which(NGINX_EXPORTER) is None:
            raise PrometheusError(
                f"{NGINX_EXPORTER} is not installed (Debian package {NGINX_EXPORTER}; see ci/setup)"
            )
        listen = f"{address}:{free_port(address)}"
        name = f"nginx-{listen.replace('.', '-').replace(':', '-')}"
        pid_file = self.directory / f"{name}.pid"
        targets = self.targets_file(f"{name}.json")
        undo.push(NginxExporterRunning(listen, str(pid_file), str(targets), status_url))
        pid = spawn_daemon(
            [
                NGINX_EXPORTER,
                f"-nginx.scrape-uri={status_url}",
                f"-web.listen-address={listen}",
            ],
            self.directory / f"{name}.log",
            pid_file,
        )
        what = f"{NGINX_EXPORTER} at {listen}"
        try:
            wait_http(f"http://{listen}/metrics", timeout, what, lambda: running(pid))
        except PrometheusError as exc:
            log_text = (self.directory / f"{name}.log").read_text(errors="replace")[-2000:]
            raise PrometheusError(f"{exc}\n{log_text}") from None
        write_targets(targets, [(listen, labels)])
        return listen

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
    """A managed Prometheus, known by its pid file and config; undone by stopping it."""

    kind = "managed-prometheus"
    disruptive = False
    config: str
    pid_file: str
    url: str

    def summary(self) -> str:
        """``start a managed Prometheus at URL``."""
        return f"start a managed Prometheus at {self.url} ({self.config})"

    def undoing(self) -> str:
        """``stop the managed Prometheus at URL``."""
        return f"stop the managed Prometheus at {self.url}"

    def undo(self, env: UndoEnv) -> None:
        """SIGTERM the pid `spawn_daemon` wrote, if it still runs this config; then wait."""
        stop_daemon(Path(self.pid_file), f"--config.file={self.config}")


@disruption_kind
@dataclass(frozen=True)
class NginxExporterRunning(Disruption):
    """A Prometheus nginx exporter and its target file; undone by stopping it, removing that."""

    kind = "nginx-exporter"
    disruptive = False
    listen: str
    pid_file: str
    targets: str
    status_url: str

    def summary(self) -> str:
        """``start an nginx exporter at ADDRESS for STATUS_URL``."""
        return f"start an nginx exporter at {self.listen} for {self.status_url}"

    def undoing(self) -> str:
        """``stop the nginx exporter at ADDRESS``."""
        return f"stop the nginx exporter at {self.listen}"

    def undo(self, env: UndoEnv) -> None:
        """Stop scraping it (its target file), then stop the exporter."""
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.targets)
        stop_daemon(Path(self.pid_file), f"-web.listen-address={self.listen}")
