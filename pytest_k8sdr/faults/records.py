"""Journal records of machine faults: what `k8sdr recover` needs to restore a machine."""

from __future__ import annotations

from typing import Any

from pytest_k8sdr.journal import JournalRecord


def machine_record(machine: Any, fault: str, restore: str) -> JournalRecord:
    """The record of `fault` on `machine`, undone by its `restore` action.

    It names the driver, the node and how to find the machine again without the inventory
    where that is possible (the simulator's state directory, a kind cluster's name); ssh and
    command machines are found again through the inventory given to `k8sdr recover`.
    Secrets (passwords, keys) are never recorded.
    """
    node = str(machine.node)
    driver = str(machine.driver)
    data: dict[str, Any] = {
        "driver": driver,
        "node": node,
        "fault": str(fault),
        "restore": str(restore),
    }
    spec = getattr(machine, "spec", None)
    if driver == "sim":
        state_dir = getattr(spec, "state_dir", None)
        if state_dir is None:
            state_dir = getattr(getattr(machine, "_cluster", None), "state_dir", None)
        data["state_dir"] = str(state_dir) if state_dir is not None else None
    elif driver == "docker" and spec is not None:
        data["cluster"] = getattr(spec, "cluster", None)
        data["docker"] = getattr(spec, "docker", "docker")
        data["docker_host"] = getattr(spec, "host", None)
    return JournalRecord("machine", data, node=node)
