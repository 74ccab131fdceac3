r"""The node agent's command line, validated before anything starts.

    python -m pytest_k8sdr.sim.node --kubeconfig PATH --node-name NAME --address 127.a.b.c \
        --pod-cidr 127.x.y.0/24 --profile fast|upstream [--node-labels k=v,...]
        [--register-with-taints k=v:NoSchedule,...] [--zone Z] [--control-socket PATH]
        [--hollow N [--hollow-first-index K] [--address-slot S]] [--pod-start-delay S]
        [--cpu 2] [--memory 8Gi] [--max-pods 110] [--log-level WARNING] [--owner-pid PID]

Labels and taints are checked as the kubelet's --node-labels and --register-with-taints are.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_k8sdr.sim.addresses import node_address, node_pod_cidr
from pytest_k8sdr.sim.client.kubeconfig import Kubeconfig, KubeconfigError, load_kubeconfig
from pytest_k8sdr.sim.errors import SimError
from pytest_k8sdr.sim.node.nodespec import NodeSpec
from pytest_k8sdr.sim.profiles import PROFILES, Profile, get_profile

__all__ = ["AgentOptions", "OptionError", "parse_args", "parse_labels", "parse_taints"]

TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
# staging/src/k8s.io/kubelet/pkg/apis/well_known_labels.go: kubernetes.io / k8s.io labels
# a kubelet may set on itself; cmd/kubelet/app/options/options.go refuses others.
KUBELET_ALLOWED_LABELS = {
    "kubernetes.io/hostname",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "node.kubernetes.io/instance-type",
    "beta.kubernetes.io/instance-type",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
}
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


class OptionError(SimError, ValueError):
    """A bad command line, reported before anything starts."""


def _label_key_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if not name or len(name) > 63 or not _LABEL_NAME.match(name):
        return False
    return not prefix or bool(re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", prefix))


def parse_labels(text: str) -> tuple[tuple[str, str], ...]:
    """`k=v,k2=v2` as the kubelet's --node-labels; OptionError names a bad or forbidden key."""
    labels: list[tuple[str, str]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not _label_key_ok(key) or len(value) > 63 or not _LABEL_NAME.match(value):
            raise OptionError(f"--node-labels: {item!r} is not a valid key=value label")
        prefix = key.rpartition("/")[0]
        namespaced = prefix in ("kubernetes.io", "k8s.io") or prefix.endswith(
            (".kubernetes.io", ".k8s.io")
        )
        if prefix == "node-restriction.kubernetes.io" or prefix.endswith(
            ".node-restriction.kubernetes.io"
        ):
            raise OptionError(
                f"--node-labels: {key!r}: the NodeRestriction admission plugin forbids "
                "node-restriction.kubernetes.io/ labels set by a kubelet"
            )
        if (
            namespaced
            and key not in KUBELET_ALLOWED_LABELS
            and prefix not in ("kubelet.kubernetes.io", "node.kubernetes.io")
            and not prefix.endswith((".kubelet.kubernetes.io", ".node.kubernetes.io"))
        ):
            raise OptionError(
                f"--node-labels: unknown 'kubernetes.io' or 'k8s.io' label {key!r} (a kubelet may "
                "not set it; role labels such as node-role.kubernetes.io/* are applied by an "
                "admin through the API, as kubeadm does)"
            )
        labels.append((key, value))
    return tuple(labels)


def parse_taints(text: str) -> tuple[tuple[str, str, str], ...]:
    """`k=v:Effect,k:Effect` as --register-with-taints; OptionError names a bad entry."""
    taints: list[tuple[str, str, str]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        keyvalue, sep, effect = item.rpartition(":")
        key, _, value = keyvalue.partition("=")
        if not sep or effect not in TAINT_EFFECTS or not _label_key_ok(key):
            raise OptionError(
                f"--register-with-taints: {item!r} is not key[=value]:Effect with Effect one of "
                f"{', '.join(TAINT_EFFECTS)}"
            )
        taints.append((key, value, effect))
    return tuple(taints)


def _loopback(value: str, what: str) -> str:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise OptionError(f"{what}: {value!r} is not an IP address") from None
    if ip.version != 4 or not ip.is_loopback:
        raise OptionError(f"{what}: {value} is not a loopback address (127.0.0.0/8)")
    return value


def _cidr(value: str) -> str:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise OptionError(f"--pod-cidr: {value!r} is not a network: {exc}") from None
    if not isinstance(net, ipaddress.IPv4Network) or not net.subnet_of(
        ipaddress.IPv4Network("127.0.0.0/8")
    ):
        raise OptionError(f"--pod-cidr: {value} is not inside 127.0.0.0/8")
    if net.num_addresses < 4:
        raise OptionError(f"--pod-cidr: {value} is too small for pods")
    return value


class AgentOptions:
    """The validated command line."""

    def __init__(self, ns: argparse.Namespace) -> None:
        self.kubeconfig_path: str = ns.kubeconfig
        self.profile: Profile = get_profile(ns.profile)
        if ns.pod_start_delay is not None:
            if ns.pod_start_delay < 0:
                raise OptionError("--pod-start-delay must be >= 0")
            self.profile = self.profile.replace(pod_start_delay=ns.pod_start_delay)
        self.control_socket: str | None = ns.control_socket
        self.owner_pid: int | None = ns.owner_pid
        if ns.control_socket and not Path(ns.control_socket).parent.is_dir():
            raise OptionError(f"--control-socket: directory of {ns.control_socket} does not exist")
        self.hollow: int | None = ns.hollow
        labels = parse_labels(ns.node_labels or "")
        taints = parse_taints(ns.register_with_taints or "")
        if ns.max_pods < 1:
            raise OptionError("--max-pods must be >= 1")
        common: dict[str, Any] = {
            "labels": labels,
            "taints": taints,
            "zone": ns.zone,
            "cpu": ns.cpu,
            "memory": ns.memory,
            "max_pods": ns.max_pods,
        }
        names = [n.strip() for n in ns.node_name.split(",") if n.strip()]
        for name in names:
            if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name) or len(name) > 253:
                raise OptionError(f"--node-name: {name!r} is not a valid DNS subdomain name")
        if ns.hollow is None:
            if len(names) != 1:
                raise OptionError("--node-name: give one name (several only with --hollow)")
            if not ns.address or not ns.pod_cidr:
                raise OptionError("--address and --pod-cidr are required (unless --hollow)")
            self.specs = [
                NodeSpec(
                    names[0],
                    _loopback(ns.address, "--address"),
                    _cidr(ns.pod_cidr),
                    **common,
                )
            ]
        else:
            if ns.hollow < 1:
                raise OptionError("--hollow must be >= 1")
            if len(names) == 1:
                names = [f"{names[0]}-{i}" for i in range(ns.hollow)]
            elif len(names) != ns.hollow:
                raise OptionError(
                    f"--hollow {ns.hollow} with {len(names)} names: give one prefix or N names"
                )
            if ns.hollow_first_index < 0:
                raise OptionError("--hollow-first-index must be >= 0")
            self.specs = [
                NodeSpec(
                    name,
                    node_address(ns.hollow_first_index + i, ns.address_slot),
                    node_pod_cidr(ns.hollow_first_index + i, ns.address_slot),
                    **common,
                )
                for i, name in enumerate(names)
            ]
        self.kubeconfig: Kubeconfig = load_kubeconfig(self.kubeconfig_path)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pytest_k8sdr.sim.node",
        description="A simulated Kubernetes node (kubelet + kube-proxy stand-in).",
    )
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--node-name", required=True, help="name, or prefix/list with --hollow")
    p.add_argument("--address", help="the node's InternalIP (127.0.0.0/8)")
    p.add_argument("--pod-cidr", help="the node's podCIDR (inside 127.0.0.0/8)")
    p.add_argument("--profile", required=True, choices=sorted(PROFILES))
    p.add_argument("--node-labels", default="")
    p.add_argument("--register-with-taints", default="")
    p.add_argument("--zone", default=None, help="topology.kubernetes.io/zone label")
    p.add_argument("--control-socket", default=None)
    p.add_argument("--hollow", type=int, default=None, metavar="N")
    p.add_argument("--hollow-first-index", type=int, default=1, metavar="K")
    p.add_argument("--address-slot", type=int, default=0, metavar="S")
    p.add_argument("--pod-start-delay", type=float, default=None, help="override the profile's")
    p.add_argument("--cpu", default="2")
    p.add_argument("--memory", default="8Gi")
    p.add_argument("--max-pods", type=int, default=110)
    p.add_argument("--log-level", default="WARNING")
    p.add_argument(
        "--owner-pid", type=int, default=None, help="end this agent when that process ends"
    )
    return p


def parse_args(argv: Sequence[str] | None = None) -> tuple[AgentOptions, str]:
    """Parse and validate; exits with status 2 and a message naming the problem."""
    parser = _parser()
    ns = parser.parse_args(argv)
    try:
        return AgentOptions(ns), ns.log_level
    except (OptionError, KubeconfigError, ValueError) as exc:
        parser.error(str(exc))
