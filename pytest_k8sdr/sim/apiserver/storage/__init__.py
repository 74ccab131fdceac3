"""Storage and watch cache of the simulated API server (etcd and the cacher, in memory)."""

from __future__ import annotations

from pytest_k8sdr.sim.apiserver.storage.storage import CommitObserver, Storage, dumps
from pytest_k8sdr.sim.apiserver.storage.watchcache import Entry, Watch

__all__ = ["CommitObserver", "Entry", "Storage", "Watch", "dumps"]
