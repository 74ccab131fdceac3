"""The control plane's store: the registry with kube-controller-manager's garbage collector.

A running control plane always has the ownership garbage collector (switched off, it still
keeps the owner graph), so the store the simulator serves, and the one tests make, come with
it attached.
"""

from __future__ import annotations

from pathlib import Path

from pytest_k8sdr.sim.apiserver.registry import store as registry
from pytest_k8sdr.sim.controllers.garbagecollector import GarbageCollector

__all__ = ["Store"]


class Store(registry.Store):
    """The served objects with upstream's write semantics and ownership GC (see the module doc)."""

    def __init__(
        self,
        *,
        history_window: float = 300.0,
        history_max: int = 500_000,
        history_max_bytes: int = 64 * 1024 * 1024,
        watch_queue_max: int = 100_000,
        bootstrap: bool = True,
        store_dir: Path | None = None,
        fsync_interval: float = 1.0,
    ) -> None:
        super().__init__(
            history_window=history_window,
            history_max=history_max,
            history_max_bytes=history_max_bytes,
            watch_queue_max=watch_queue_max,
            bootstrap=bootstrap,
            store_dir=store_dir,
            fsync_interval=fsync_interval,
        )
        self.garbage_collector = GarbageCollector(self)
