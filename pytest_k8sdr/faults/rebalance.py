"""Rebalance a workload as upstream can: evict chosen pods, let the scheduler place them.

Kubernetes never moves running pods back onto a returned node; the descheduler or an operator
evicts pods from crowded nodes (kubernetes-sigs/descheduler, RemoveDuplicates /
LowNodeUtilization). Evictions go through the Eviction API, so PodDisruptionBudgets apply.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from pytest_k8sdr.cluster import PodView
from pytest_k8sdr.errors import ClusterCheckFailed
from pytest_k8sdr.results import timeout_for
from pytest_k8sdr.workloads import Workload


@dataclass
class RebalanceReport:
    """What a rebalance evicted, how often a PDB refused, and the placement before and after."""

    evicted: list[str] = field(default_factory=list)
    blocked: int = 0
    before: dict[str, int] = field(default_factory=dict)
    after: dict[str, int] = field(default_factory=dict)


def _skew(counts: dict[str, int]) -> int:
    return max(counts.values()) - min(counts.values()) if counts else 0


def rebalance(
    workload: Workload,
    nodes: Iterable[str],
    *,
    max_skew: int = 1,
    timeout: float | None = None,
    retry_interval: float = 1.0,
) -> RebalanceReport:
    """Evict pods from the most crowded of `nodes` until the spread is within `max_skew`.

    One eviction at a time, each followed by a wait for the workload to be whole again, so the
    workload never loses more than one replica to the rebalance. Raises ClusterCheckFailed when
    the spread is not reached before `timeout` (the scheduler kept placing pods unevenly, or a
    PDB kept refusing); `timeout` defaults to the runbook phase's remaining SLO.
    """
    __tracebackhide__ = True
    eligible = sorted(set(nodes))
    timeout = timeout_for(timeout)
    deadline = time.monotonic() + timeout
    report = RebalanceReport()

    def counts() -> dict[str, int]:
        placement = workload.placement()
        return {n: placement.get(n, 0) for n in eligible}

    report.before = counts()
    current = report.before
    while _skew(current) > max_skew:
        if time.monotonic() > deadline:
            raise ClusterCheckFailed(
                f"rebalance of {workload.kind} {workload.name} did not reach skew {max_skew} "
                f"within {timeout:.0f}s: placement {current}, evicted {len(report.evicted)}, "
                f"PDB refusals {report.blocked}"
            )
        crowded = max(current, key=lambda n: (current[n], n))
        victims: list[PodView] = [
            p for p in workload.pods() if p.node == crowded and not p.deleting and p.ready
        ]
        if not victims:
            threading.Event().wait(retry_interval)
            current = counts()
            continue
        outcome = workload.cluster.evict(victims[0])
        if outcome == "blocked":
            report.blocked += 1
            threading.Event().wait(retry_interval)
        elif outcome == "evicted":
            report.evicted.append(victims[0].key)
            workload.wait_ready(timeout=max(1.0, deadline - time.monotonic()))
        current = counts()
    report.after = current
    return report
