"""A cluster's shape from kind's own `Cluster` config (kind.x-k8s.io/v1alpha4).

One file describes the kind cluster and the simulated one: `kind create cluster --config FILE`
and `k8sdr sim up --config FILE` (or the plugin's `sim_config` setting) give the same nodes.

- `nodes`: one node per entry, named as kind names them (kind pkg/cluster/internal/providers/
  common/namer.go: `<cluster>-control-plane`, `<cluster>-control-plane2`, ...,
  `<cluster>-worker`, `<cluster>-worker2`, ...); no `nodes` is one control-plane node, as on
  kind. The cluster is the file's `name`, else `k8sdr` (kind's own default is `kind`, and its
  `--name` overrides the file; the simulator's nodes are `k8sdr-...` like the CI cluster's).
- `role: control-plane` nodes carry kubeadm's label `node-role.kubernetes.io/control-plane` and
  taint `node-role.kubernetes.io/control-plane:NoSchedule`, except when there is no worker:
  kind then removes the taint so pods can run (kind pkg/cluster/internal/create/actions/
  kubeadminit/init.go).
- `labels` are the node's labels; `topology.kubernetes.io/zone` among them is its zone.
- Capacity: kind has no field for it (a kind node has the host's CPUs and memory), so the
  simulator reads three labels of its own, which kind accepts as any label:
  `sim.k8sdr.io/cpu` (default "2"), `sim.k8sdr.io/memory` (default "8Gi") and
  `sim.k8sdr.io/max-pods` (default "110").
- Fields kind accepts that the simulator has no use for (networking, featureGates,
  runtimeConfig, kubeadm and containerd patches; a node's image, extraMounts,
  extraPortMappings, gpus, patches) are ignored, each with a note. The timings of kubeadm
  patches are the profile's business (`--profile`, setting `profile`).
- A field kind does not know is an error, as it is for kind (it decodes its config strictly),
  and so is a value of the wrong type: `KindConfigError` names the file and the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pytest_k8sdr.sim.launcher import NodeShape

__all__ = ["KindConfig", "KindConfigError", "load_kind_config", "parse_kind_config"]

API_VERSION = "kind.x-k8s.io/v1alpha4"
ROLES = ("control-plane", "worker")
ZONE_LABEL = "topology.kubernetes.io/zone"
CONTROL_PLANE_ROLE = "node-role.kubernetes.io/control-plane"
DEFAULT_NAME = "k8sdr"
# The simulator's capacity labels: (label, NodeShape field).
CAPACITY_LABELS = {
    "sim.k8sdr.io/cpu": "cpu",
    "sim.k8sdr.io/memory": "memory",
    "sim.k8sdr.io/max-pods": "max_pods",
}
# kind's v1alpha4 fields (kind pkg/apis/config/v1alpha4/types.go) the simulator ignores.
IGNORED_CLUSTER_FIELDS = (
    "networking",
    "featureGates",
    "runtimeConfig",
    "kubeadmConfigPatches",
    "kubeadmConfigPatchesJSON6902",
    "containerdConfigPatches",
    "containerdConfigPatchesJSON6902",
)
IGNORED_NODE_FIELDS = (
    "image",
    "extraMounts",
    "extraPortMappings",
    "gpus",
    "kubeadmConfigPatches",
    "kubeadmConfigPatchesJSON6902",
)
_CLUSTER_FIELDS = ("kind", "apiVersion", "name", "nodes", *IGNORED_CLUSTER_FIELDS)
_NODE_FIELDS = ("role", "labels", *IGNORED_NODE_FIELDS)
# A Kubernetes quantity as a node's capacity takes it: 2, 500m, 1.5, 8Gi, 512M.
_QUANTITY = re.compile(r"^\d+(\.\d+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
# kind names its node containers after the cluster: a DNS-style name.
_CLUSTER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


class KindConfigError(ValueError):
    """A kind config the simulator cannot use: the message names the file and the field."""


@dataclass(frozen=True)
class KindConfig:
    """A kind `Cluster` read for the simulator: its nodes, and what of the file it ignored."""

    source: str
    name: str
    nodes: tuple[NodeShape, ...]
    notes: tuple[str, ...]


def load_kind_config(path: Path) -> KindConfig:
    """Read and check a kind `Cluster` file; `KindConfigError` names the file and the field."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise KindConfigError(f"kind config {path}: cannot be read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise KindConfigError(f"kind config {path}: not YAML: {exc}") from exc
    return parse_kind_config(doc, str(path))


def parse_kind_config(doc: object, source: str) -> KindConfig:
    """Check a parsed kind `Cluster` document; `source` names it in errors and notes."""

    def fail(where: str, problem: str) -> KindConfigError:
        return KindConfigError(f"kind config {source}: {where}: {problem}")

    if not isinstance(doc, Mapping):
        raise fail("(document)", f"expected a kind Cluster mapping, got {type(doc).__name__}")
    unknown = [k for k in doc if k not in _CLUSTER_FIELDS]
    if unknown:
        raise fail(str(unknown[0]), f"not a field of kind's Cluster ({API_VERSION})")
    if doc.get("kind") != "Cluster":
        raise fail("kind", f"expected Cluster, got {doc.get('kind')!r}")
    if doc.get("apiVersion") != API_VERSION:
        raise fail("apiVersion", f"expected {API_VERSION}, got {doc.get('apiVersion')!r}")
    name = doc.get("name", DEFAULT_NAME)
    if not isinstance(name, str) or not _CLUSTER_NAME.match(name):
        raise fail("name", f"{name!r} is not a cluster name (lower-case letters, digits, '.', '-')")
    entries = doc.get("nodes")
    if entries is None:
        entries = [{"role": "control-plane"}]  # kind's default: one control-plane node
    if not isinstance(entries, list) or not entries:
        raise fail("nodes", "expected a non-empty list of nodes")
    notes = [
        f"{source}: {field} is kind's, ignored by the simulator"
        for field in IGNORED_CLUSTER_FIELDS
        if field in doc
    ]
    roles = [_role(entry, f"nodes[{i}]", fail) for i, entry in enumerate(entries)]
    has_workers = "worker" in roles
    counts = dict.fromkeys(ROLES, 0)
    shapes = []
    for i, (entry, role) in enumerate(zip(entries, roles, strict=True)):
        where = f"nodes[{i}]"
        counts[role] += 1
        number = counts[role]
        node_name = f"{name}-{role}" + (str(number) if number > 1 else "")
        notes += [
            f"{source}: {where}.{field} is kind's, ignored by the simulator"
            for field in IGNORED_NODE_FIELDS
            if field in entry
        ]
        shapes.append(_shape(entry, where, node_name, role, has_workers, fail))
    return KindConfig(source, name, tuple(shapes), tuple(notes))


def _role(entry: object, where: str, fail: Any) -> str:
    if not isinstance(entry, Mapping):
        raise fail(where, f"expected a node mapping, got {type(entry).__name__}")
    unknown = [k for k in entry if k not in _NODE_FIELDS]
    if unknown:
        raise fail(f"{where}.{unknown[0]}", "not a field of kind's Node")
    role = entry.get("role", "control-plane")  # kind's default role
    if role not in ROLES:
        raise fail(f"{where}.role", f"expected one of {', '.join(ROLES)}, got {role!r}")
    return str(role)


def _shape(
    entry: Mapping[str, Any],
    where: str,
    node_name: str,
    role: str,
    has_workers: bool,
    fail: Any,
) -> NodeShape:
    labels = entry.get("labels") or {}
    if not isinstance(labels, Mapping):
        raise fail(f"{where}.labels", f"expected a mapping, got {type(labels).__name__}")
    for key, value in labels.items():
        if not isinstance(key, str) or not isinstance(value, str):
            # kind decodes labels as map[string]string: 4 or true must be quoted.
            raise fail(f"{where}.labels.{key}", f"expected a string value, got {value!r}")
    capacity: dict[str, Any] = {}
    for label, field in CAPACITY_LABELS.items():
        if label not in labels:
            continue
        value = labels[label]
        if field == "max_pods":
            if not value.isdigit() or int(value) < 1:
                raise fail(f"{where}.labels.{label}", f"expected a positive integer, got {value!r}")
            capacity[field] = int(value)
        elif not _QUANTITY.match(value):
            raise fail(
                f"{where}.labels.{label}", f"expected a quantity (e.g. 4, 8Gi), got {value!r}"
            )
        else:
            capacity[field] = value
    node_labels = dict(labels)
    taints: tuple[tuple[str, str, str], ...] = ()
    if role == "control-plane":
        node_labels[CONTROL_PLANE_ROLE] = ""
        if has_workers:
            taints = ((CONTROL_PLANE_ROLE, "", "NoSchedule"),)
    return NodeShape(
        name=node_name,
        labels=tuple(sorted(node_labels.items())),
        taints=taints,
        zone=labels.get(ZONE_LABEL),
        **capacity,
    )
