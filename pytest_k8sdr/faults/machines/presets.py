"""Default per-action commands for machines reached over SSH (and inside kind node containers).

Commands are shell templates run on the node. Power actions detach (`nohup ... &` after a short
sleep) so the command returns before the machine goes down and the SSH session ends cleanly.
`freeze` suspends the kubelet only: pausing a whole VM needs its hypervisor (use the command
driver for that). `partition` drops the node's traffic to and from the API server with iptables;
`heal` deletes every copy of those rules, so it is a no-op when there are none.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from pytest_k8sdr.faults.machines._commands import Command

# Keys besides the actions: the health check asks each service in turn.
KUBELET_ACTIVE = "kubelet_active"
RUNTIME_ACTIVE = "runtime_active"

_RULES = (
    "OUTPUT -d {api_host} -p tcp --dport {api_port} -j DROP",
    "INPUT -s {api_host} -p tcp --sport {api_port} -j DROP",
)
PARTITION = " && ".join(f"(iptables -C {r} 2>/dev/null || iptables -I {r})" for r in _RULES)
HEAL = "; ".join(f"while iptables -D {r} 2>/dev/null; do :; done" for r in _RULES)

_POWER_OFF = "nohup sh -c 'sleep 1; systemctl poweroff' >/dev/null 2>&1 &"
# sysrq "o": power off at once, no sync, no unmount: the machine crashes and stays off.
_CRASH = (
    "nohup sh -c 'sleep 1; echo 1 > /proc/sys/kernel/sysrq; echo o > /proc/sysrq-trigger'"
    " >/dev/null 2>&1 &"
)


def _commands(raw: dict[str, str]) -> Mapping[str, Command]:
    return MappingProxyType({key: Command(value) for key, value in raw.items()})


SYSTEMD: Mapping[str, Command] = _commands(
    {
        "stop": _POWER_OFF,
        "kill": _CRASH,
        "freeze": "systemctl kill --signal=SIGSTOP kubelet",
        # Nothing to resume when the unit is not running: thaw is then a no-op.
        "thaw": "! systemctl is-active --quiet kubelet || systemctl kill --signal=SIGCONT kubelet",
        "partition": PARTITION,
        "heal": HEAL,
        "stop_kubelet": "systemctl stop kubelet",
        "start_kubelet": "systemctl start kubelet",
        "stop_runtime": "systemctl stop containerd",
        "start_runtime": "systemctl start containerd",
        KUBELET_ACTIVE: "systemctl is-active --quiet kubelet",
        RUNTIME_ACTIVE: "systemctl is-active --quiet containerd",
    }
)

# k3s runs the kubelet and containerd inside one unit (k3s-agent on workers); k3s-killall.sh
# (installed by the k3s install script) stops it and every container.
K3S: Mapping[str, Command] = _commands(
    {
        "stop": _POWER_OFF,
        "kill": _CRASH,
        "freeze": "systemctl kill --signal=SIGSTOP k3s-agent",
        "thaw": (
            "! systemctl is-active --quiet k3s-agent || systemctl kill --signal=SIGCONT k3s-agent"
        ),
        "partition": PARTITION,
        "heal": HEAL,
        "stop_kubelet": "systemctl stop k3s-agent",
        "start_kubelet": "systemctl start k3s-agent",
        "stop_runtime": "k3s-killall.sh",
        "start_runtime": "systemctl start k3s-agent",
        KUBELET_ACTIVE: "systemctl is-active --quiet k3s-agent",
        RUNTIME_ACTIVE: "pgrep -x containerd >/dev/null",
    }
)

PRESETS: Mapping[str, Mapping[str, Command]] = MappingProxyType(
    {"systemd": SYSTEMD, "k3s": K3S, "none": MappingProxyType({})}
)

# Inside a kind node container (systemd, containerd): what docker exec runs.
KIND_NODE: Mapping[str, Command] = MappingProxyType(
    {
        key: SYSTEMD[key]
        for key in (
            "partition",
            "heal",
            "stop_kubelet",
            "start_kubelet",
            "stop_runtime",
            "start_runtime",
            KUBELET_ACTIVE,
            RUNTIME_ACTIVE,
        )
    }
)
