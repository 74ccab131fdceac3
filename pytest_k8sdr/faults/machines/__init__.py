"""How a node's machine is stopped and started: one `Machine` protocol, four drivers.

- `sim`: the simulator's node agents (process signals, restarts), as `k8sdr sim node ...`.
- `docker`: kind node containers, found by kind's labels.
- `ssh`: staging machines over SSH (paramiko), power-on through an out-of-band command.
- `command`: any local command per action (IPMI, a cloud CLI, a site's tooling).

`Machines(inventory, undo)` hands out the machine of each node; every fault registers its undo
on `undo` before it acts.
"""

from __future__ import annotations

from pytest_k8sdr.faults.machines.base import (
    UNDO_OF,
    Action,
    Machine,
    MachineBase,
    MachineError,
    MachineHealth,
    MachineState,
)
from pytest_k8sdr.faults.machines.command import CommandMachine
from pytest_k8sdr.faults.machines.docker import DockerMachine
from pytest_k8sdr.faults.machines.factory import Machines, make_machine
from pytest_k8sdr.faults.machines.inventory import (
    CommandSpec,
    DockerSpec,
    Inventory,
    MachineSpec,
    Secret,
    SimSpec,
    SshHop,
    SshSpec,
    inventory_from_settings,
    load_inventory,
    parse_inventory,
)
from pytest_k8sdr.faults.machines.sim import SimMachine
from pytest_k8sdr.faults.machines.ssh import SshMachine
from pytest_k8sdr.faults.machines.zone import ZONE_LABEL, Zone, ZoneFault

__all__ = [
    "UNDO_OF",
    "ZONE_LABEL",
    "Action",
    "CommandMachine",
    "CommandSpec",
    "DockerMachine",
    "DockerSpec",
    "Inventory",
    "Machine",
    "MachineBase",
    "MachineError",
    "MachineHealth",
    "MachineSpec",
    "MachineState",
    "Machines",
    "Secret",
    "SimMachine",
    "SimSpec",
    "SshHop",
    "SshMachine",
    "SshSpec",
    "Zone",
    "ZoneFault",
    "inventory_from_settings",
    "load_inventory",
    "make_machine",
    "parse_inventory",
]
