"""Guards checked before the first disruption: protected nodes, a cap, a healthy start.

`Guards` is the journal's guard: every journaled disruption passes through it before anything
is written or touched, whatever made it (a node fault, a machine, a load balancer).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pytest_k8sdr.cluster import MANAGED_BY, Cluster, NodeView
from pytest_k8sdr.errors import ConfigError
from pytest_k8sdr.faults.node import CONTROL_PLANE_LABELS
from pytest_k8sdr.journal import ANNOTATION, JournalRecord


class GuardRefused(ConfigError):
    """A guard refused a disruption or the whole run; nothing was touched."""


@dataclass(frozen=True)
class Guards:
    """Which nodes may be disrupted, and how many at once.

    `protected` maps node names to why they are protected; `addresses` maps InternalIPs to node
    names (a load-balancer drain by address counts against its node).
    """

    protected: Mapping[str, str] = field(default_factory=dict)
    max_disrupted: int | None = None
    addresses: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def for_cluster(
        cls,
        cluster: Cluster,
        *,
        protected_selector: str | None = None,
        allow_control_plane: bool = False,
        max_disrupted: int | None = None,
    ) -> Guards:
        """Resolve the protected nodes now (control plane, and `protected_selector`'s nodes)."""
        nodes = cluster.nodes()
        protected: dict[str, str] = {}
        if not allow_control_plane:
            for node in nodes:
                label = next((lb for lb in CONTROL_PLANE_LABELS if lb in node.labels), None)
                if label is not None:
                    protected[node.name] = f"a control-plane node (label {label})"
        if protected_selector:
            try:
                selected = cluster.nodes(label_selector=protected_selector)
            except Exception as exc:  # the API server's 400 for a bad selector
                raise ConfigError(
                    f"protected_nodes: invalid label selector {protected_selector!r}: {exc}"
                ) from exc
            for node in selected:
                protected.setdefault(node.name, f"selected by protected_nodes={protected_selector}")
        addresses = {n.internal_ip: n.name for n in nodes if n.internal_ip}
        return cls(protected, max_disrupted, addresses)

    def node_of(self, record: JournalRecord) -> str | None:
        """The node a record disrupts (by name, or by the address a load balancer drains)."""
        if record.node:
            return record.node
        address = record.data.get("address")
        return self.addresses.get(address) if isinstance(address, str) else None

    def __call__(self, record: JournalRecord, open_records: Sequence[JournalRecord]) -> None:
        """Refuse `record` (GuardRefused) if it touches a protected node or exceeds the cap."""
        node = self.node_of(record)
        if node is None:
            return
        why = self.protected.get(node)
        if why is not None:
            raise GuardRefused(
                f"refusing {record.kind} of node {node!r}: it is protected ({why}); "
                "change --k8sdr-protected-nodes to allow it"
            )
        if self.max_disrupted is not None:
            disrupted = {n for r in open_records if (n := self.node_of(r)) is not None}
            if node not in disrupted and len(disrupted) >= self.max_disrupted:
                raise GuardRefused(
                    f"refusing {record.kind} of node {node!r}: {len(disrupted)} node(s) are "
                    f"disrupted already ({', '.join(sorted(disrupted))}) and "
                    f"--k8sdr-max-disrupted is {self.max_disrupted}"
                )


def health_problems(cluster: Cluster) -> list[str]:
    """What makes the cluster unfit to start a game day from, one line each (empty: healthy).

    Nodes not Ready, nodes carrying open journal entries of an earlier run, and Deployments,
    StatefulSets and DaemonSets with fewer Ready pods than they want.
    """
    problems: list[str] = []
    nodes: list[NodeView] = cluster.nodes()
    for node in nodes:
        if node.ready != "True":
            problems.append(f"node {node.name} is not Ready (Ready={node.ready})")
        if node.annotations.get(ANNOTATION):
            problems.append(
                f"node {node.name} carries open disruptions of an earlier run "
                f"(annotation {ANNOTATION}); run `k8sdr recover --cluster` first"
            )
    # Our own test namespaces come and go with the tests; they say nothing of the cluster.
    ours = {
        ns["metadata"]["name"]
        for ns in cluster.list_raw("namespaces", label_selector="=".join(MANAGED_BY))["items"]
    }
    terminating = {
        ns["metadata"]["name"]
        for ns in cluster.list_raw("namespaces")["items"]
        if ns["metadata"].get("deletionTimestamp")
    }
    for kind, want_key, have_key in (
        ("deployments", ("spec", "replicas"), ("status", "readyReplicas")),
        ("statefulsets", ("spec", "replicas"), ("status", "readyReplicas")),
        ("daemonsets", ("status", "desiredNumberScheduled"), ("status", "numberReady")),
    ):
        for obj in cluster.list_raw(kind)["items"]:
            if obj["metadata"].get("namespace") in ours | terminating:
                continue
            want = (obj.get(want_key[0]) or {}).get(want_key[1])
            want = 1 if want is None and kind != "daemonsets" else int(want or 0)
            have = int((obj.get(have_key[0]) or {}).get(have_key[1]) or 0)
            if have < want:
                meta = obj["metadata"]
                problems.append(
                    f"{kind[:-1]} {meta.get('namespace')}/{meta['name']} is not Ready "
                    f"({have}/{want} ready)"
                )
    return problems


def refuse_unless_healthy(cluster: Cluster) -> None:
    """GuardRefused listing what is wrong when the cluster is not healthy."""
    problems = health_problems(cluster)
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise GuardRefused(
            "refusing to start disruptive tests: the cluster is not healthy, so a run would "
            f"start from a broken state:\n  {shown}{more}\n"
            "(fix it first, or pass --k8sdr-require-healthy=off to start anyway)"
        )
