"""What journaling costs a disruption: cordon + undo with and without the journal, on the simulator.

Prints the mean time and API requests per cordon/uncordon cycle, plain and journaled (fsync'ed
file line and Node annotation), and their ratio. Run: `.venv/bin/python ci/bench/bench_journal.py`.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from pytest_k8sdr.cluster import Cluster
from pytest_k8sdr.faults.node import NodeFaults
from pytest_k8sdr.journal import ClusterAnnotator, Journal
from pytest_k8sdr.sim import SimCluster
from pytest_k8sdr.undo import UndoStack

CYCLES = int(sys.argv[1]) if len(sys.argv) > 1 else 30


def cycles(cluster: Cluster, journal: Journal | None) -> tuple[float, float]:
    """Mean seconds and API requests per cordon + undo."""
    times, requests = [], []
    for _ in range(CYCLES):
        stack = UndoStack(journal)
        before = cluster.requests
        start = time.perf_counter()
        NodeFaults(cluster, stack).cordon("k8sdr-worker")
        stack.unwind()
        times.append(time.perf_counter() - start)
        requests.append(cluster.requests - before)
    return statistics.mean(times), statistics.mean(requests)


def main() -> None:
    """Measure both ways on one simulated cluster and print the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        sim = SimCluster.start(Path(tmp) / "sim", workers=1, profile="fast")
        try:
            cluster = Cluster.from_kubeconfig(sim.kubeconfig_path)
            cycles(cluster, None)  # warm up connections
            plain_t, plain_r = cycles(cluster, None)
            with Journal(Path(tmp) / "j.jsonl", annotator=ClusterAnnotator(cluster)) as journal:
                journ_t, journ_r = cycles(cluster, journal)
            cluster.close()
        finally:
            sim.stop()
    print(f"cordon+undo cycles: {CYCLES}")
    print(f"plain:     {plain_t * 1000:7.1f} ms/cycle  {plain_r:5.1f} API requests/cycle")
    print(f"journaled: {journ_t * 1000:7.1f} ms/cycle  {journ_r:5.1f} API requests/cycle")
    print(f"ratio:     {journ_t / plain_t:7.2f}x time  {journ_r / plain_r:5.2f}x requests")


if __name__ == "__main__":
    main()
