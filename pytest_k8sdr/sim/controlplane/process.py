"""The control-plane process: the API server, the controllers and the scheduler, one loop.

    python -m pytest_k8sdr.sim.controlplane --state-dir DIR [--host 127.0.0.1] [--port 0]
        --profile fast|upstream [--disable-controller NAME ...] [--fault-* ...]

kind runs kube-apiserver, kube-controller-manager and kube-scheduler as separate processes on
its control-plane node; the simulator runs them in one asyncio event loop around one `Store`,
so the controllers read it directly. When it answers, DIR/apiserver.json
{"host","port","pid","token","url"} and DIR/kubeconfig exist.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import os
import secrets
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from aiohttp import web

from pytest_k8sdr.sim import tls
from pytest_k8sdr.sim.apiserver.server import ApiServer, ServerSettings
from pytest_k8sdr.sim.client import kubeconfig
from pytest_k8sdr.sim.controllers import ControllerManager
from pytest_k8sdr.sim.controlplane.store import Store
from pytest_k8sdr.sim.faults import FaultConfig
from pytest_k8sdr.sim.processes import kill_recorded_agents, watch_owner
from pytest_k8sdr.sim.profiles import get_profile

__all__ = ["main", "serve"]

log = logging.getLogger("pytest_k8sdr.sim.controlplane")


ZONE_FLAGS: dict[str, type[float] | type[int]] = {
    "node-eviction-rate": float,
    "secondary-node-eviction-rate": float,
    "large-cluster-size-threshold": int,
    "unhealthy-zone-threshold": float,
}


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_k8sdr.sim.controlplane",
        description="Run the simulated Kubernetes API server and controllers.",
    )
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--profile", default="fast")
    parser.add_argument("--disable-controller", action="append", default=[])
    # kube-controller-manager's node lifecycle flags
    # (cmd/kube-controller-manager/app/options/nodelifecyclecontroller.go); default: the profile's.
    for flag, kind in ZONE_FLAGS.items():
        parser.add_argument(f"--{flag}", type=kind, default=None)
    parser.add_argument("--token", default=None, help="bearer token (default: random)")
    parser.add_argument(
        "--history-window",
        type=float,
        default=300.0,
        help="seconds of watch history kept (older resourceVersions are 410)",
    )
    parser.add_argument(
        "--history-max",
        type=int,
        default=500_000,
        help="at most this many changes kept per resource type in the watch history",
    )
    parser.add_argument(
        "--store-dir",
        type=Path,
        default=None,
        help="where the durable store lives (default: STATE_DIR/store); a restart resumes it",
    )
    parser.add_argument(
        "--ephemeral", action="store_true", help="keep the store in memory only (no restart)"
    )
    parser.add_argument(
        "--fsync-interval",
        type=float,
        default=1.0,
        help="seconds between fsyncs of the store's log (every commit is written at once)",
    )
    parser.add_argument("--bookmark-interval", type=float, default=None)
    parser.add_argument("--min-request-timeout", type=float, default=1800.0)
    parser.add_argument("--fault-error-rate", type=float, default=0.0)
    parser.add_argument("--fault-latency-ms", type=float, default=0.0)
    parser.add_argument("--fault-watch-cut-seconds", type=float, default=0.0)
    parser.add_argument("--fault-retry-after", type=int, default=1)
    parser.add_argument("--fault-error-codes", default="500,429")
    parser.add_argument("--ready-fd", type=int, default=None, help="write a line here when serving")
    parser.add_argument(
        "--owner-pid",
        type=int,
        default=None,
        help="end the cluster (this process and its recorded agents) when that process ends",
    )
    return parser.parse_args(argv)


def _check_host(host: str) -> None:
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        if host == "localhost":
            return
    raise ValueError(
        f"the simulator serves on loopback only; --host {host!r} is not a loopback address"
    )


async def serve(
    state_dir: Path,
    settings: ServerSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    ready: Callable[[str, int], Awaitable[None] | None] | None = None,
    stop: asyncio.Event | None = None,
    store_dir: Path | None = None,
    fsync_interval: float = 1.0,
) -> None:
    """Serve until `stop` is set (or forever): TLS, the Store, the controllers.

    With `store_dir` the store is durable there: a later `serve` on it resumes the objects
    and the resourceVersion counter, as kube-apiserver does from etcd.
    """
    _check_host(host)
    state_dir.mkdir(parents=True, exist_ok=True)
    certs = tls.load_or_generate(state_dir / "pki", host)
    ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ssl_ctx.load_cert_chain(certs.cert_path, certs.key_path)
    store = Store(
        history_window=settings.history_window,
        history_max=settings.history_max,
        store_dir=store_dir,
        fsync_interval=fsync_interval,
    )
    server = ApiServer(store, settings)
    runner = web.AppRunner(server.app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_ctx, backlog=1024, reuse_address=True)
    await site.start()
    addresses = runner.addresses
    bound_port = int(addresses[0][1]) if addresses else port
    controllers = ControllerManager(store, settings.profile, certs.ca_pem)
    controllers.start(set(settings.disabled_controllers))
    server.controllers = controllers
    url = f"https://{host}:{bound_port}"
    kubeconfig.write(state_dir / "kubeconfig", url, certs.ca_pem, settings.token)
    info = {
        "host": host,
        "port": bound_port,
        "pid": os.getpid(),
        "token": settings.token,
        "url": url,
    }
    tmp = state_dir / "apiserver.json.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(info, fh)
    tmp.replace(state_dir / "apiserver.json")
    if ready is not None:
        result = ready(host, bound_port)
        if result is not None:
            await result
    stop = stop or asyncio.Event()
    try:
        await stop.wait()
    finally:
        controllers.stop()
        await server.close_watches()
        await runner.cleanup()
        store.storage.close_durable()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server process until SIGTERM/SIGINT."""
    args = _parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    try:
        profile = get_profile(args.profile)
        overrides: dict[str, float | int | str] = {}
        for flag in ZONE_FLAGS:
            value = getattr(args, flag.replace("-", "_"))
            if value is not None:
                if value < 0:
                    raise ValueError(f"--{flag} must be >= 0, got {value}")
                overrides[flag.replace("-", "_")] = value
        profile = profile.replace(**overrides) if overrides else profile
        _check_host(args.host)
        faults = FaultConfig(
            error_rate=args.fault_error_rate,
            latency_ms=args.fault_latency_ms,
            watch_cut_seconds=args.fault_watch_cut_seconds,
            retry_after=args.fault_retry_after,
            error_codes=tuple(int(c) for c in args.fault_error_codes.split(",") if c),
        )
    except ValueError as exc:
        print(f"k8sdr sim control plane: {exc}", file=sys.stderr)
        return 2
    bookmark = args.bookmark_interval
    if bookmark is None:
        bookmark = 60.0 if profile.name == "upstream" else 5.0
    settings = ServerSettings(
        token=args.token or secrets.token_urlsafe(32),
        profile=profile,
        history_window=args.history_window,
        history_max=args.history_max,
        bookmark_interval=bookmark,
        min_request_timeout=args.min_request_timeout,
        faults=faults,
        disabled_controllers=frozenset(args.disable_controller),
    )

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if args.owner_pid is not None:

            def owner_gone() -> None:
                killed = kill_recorded_agents(args.state_dir)
                log.warning(
                    "owner pid %s ended: stopping the cluster (killed agents %s)",
                    args.owner_pid,
                    killed,
                )
                stop.set()

            watch_owner(args.owner_pid, owner_gone)

        def ready(host: str, port: int) -> None:
            if args.ready_fd is not None:
                os.write(args.ready_fd, f"{host}:{port}\n".encode())
                os.close(args.ready_fd)

        store_dir = None if args.ephemeral else (args.store_dir or args.state_dir / "store")
        await serve(
            args.state_dir,
            settings,
            host=args.host,
            port=args.port,
            stop=stop,
            ready=ready,
            store_dir=store_dir,
            fsync_interval=args.fsync_interval,
        )

    try:
        asyncio.run(run())
    except OSError as exc:
        print(
            f"k8sdr sim control plane: cannot serve on {args.host}:{args.port}: {exc}",
            file=sys.stderr,
        )
        return 1
    except ValueError as exc:
        print(f"k8sdr sim control plane: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
