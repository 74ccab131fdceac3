"""The agent rides out a slow, failing API server: 5xx, 429 with Retry-After, cut watches."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from tests.sim.agent.agentsim import JSON_HEADERS, Server, http_get, make_pod

# A fifth of the requests fail (500 or 429 + Retry-After: 1), every request waits 20ms more,
# and every watch is cut after 2s.
FAULTS = [
    "--fault-error-rate", "0.2",
    "--fault-latency-ms", "20",
    "--fault-watch-cut-seconds", "2",
]  # fmt: skip


@pytest.fixture(scope="module")
def server_args() -> list[str]:
    return FAULTS


def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll the agent's control socket (it has no watch) until `check` holds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def test_agent_registers_heartbeats_and_runs_pods_despite_faults(
    sim_server: Server, make_agent: Any
) -> None:
    agent = make_agent()
    _until(lambda: agent.ctl("status")["ready"] and agent.ctl("status")["nodeKnown"], 20, "Ready")
    for _ in range(20):  # the test's own requests meet the same faults
        try:
            sim_server.core.create_namespaced_pod(
                "default", make_pod(f"{agent.name}-f", agent.name), _headers=dict(JSON_HEADERS)
            )
            break
        except ApiException as exc:
            if exc.status == 409:  # created by an attempt whose answer was lost
                break
            if exc.status not in (429, 500):
                raise
    # The first pod of a fresh node gets the podCIDR's first address.
    pod_ip = agent.pod_cidr.rsplit(".", 1)[0] + ".1"
    _until(lambda: agent.ctl("status")["runningPods"] == 1, 20, "the pod running")
    assert http_get(f"http://{pod_ip}:8080/")[2]["pod"] == f"{agent.name}-f"

    before = agent.ctl("status")["leaseRenewals"]
    time.sleep(4)  # four renew periods, one node monitor grace period
    state = agent.ctl("status")
    assert agent.proc is not None
    assert agent.proc.poll() is None
    # Retried renewals (Retry-After: 1) may slip, but most land.
    assert state["leaseRenewals"] - before >= 2, state
