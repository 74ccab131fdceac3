"""Node registration (pkg/kubelet/kubelet_node_status.go `initialNode`, `tryRegisterWithAPIServer`).

POST the Node; on AlreadyExists only the default labels and the
controller-managed-attach-detach annotation are reconciled, so hand-made labels and taints
survive a restart while a deleted Node comes back fresh. A running kubelet never registers
again, even if its Node is deleted (kubernetes/kubernetes issues #71398, #115761).
"""

from __future__ import annotations

from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.client.rest import ApiClient, ApiStatusError
from pytest_k8sdr.sim.node.nodespec import NodeSpec

__all__ = ["default_labels", "initial_node", "reconcile_existing", "try_register"]

CMAD_ANNOTATION = "volumes.kubernetes.io/controller-managed-attach-detach"
STRATEGIC = "application/strategic-merge-patch+json"
# pkg/kubelet/kubelet_node_status.go `updateDefaultLabels`: the only labels a restarted
# kubelet puts back on an existing Node.
DEFAULT_LABEL_KEYS = (
    "kubernetes.io/hostname",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "node.kubernetes.io/instance-type",
    "beta.kubernetes.io/instance-type",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "node.kubernetes.io/windows-build",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
)


def default_labels(spec: NodeSpec) -> dict[str, str]:
    """The labels the kubelet sets on its own (pkg/kubelet/kubelet_node_status.go)."""
    labels = {
        "kubernetes.io/hostname": spec.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
    }
    if spec.zone:
        labels["topology.kubernetes.io/zone"] = spec.zone
    return labels


def initial_node(spec: NodeSpec, status: JSON) -> JSON:
    """The Node a kubelet POSTs when it registers."""
    labels = default_labels(spec)
    labels.update(dict(spec.labels))
    node_spec: JSON = {
        "podCIDR": spec.pod_cidr,
        "podCIDRs": [spec.pod_cidr],
        "providerID": f"k8sdr-sim://{spec.name}",
    }
    if spec.taints:
        node_spec["taints"] = [
            {"key": k, "effect": e, **({"value": v} if v else {})} for k, v, e in spec.taints
        ]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": spec.name,
            "labels": labels,
            "annotations": {CMAD_ANNOTATION: "true"},
        },
        "spec": node_spec,
        "status": status,
    }


def reconcile_existing(spec: NodeSpec, existing: JSON) -> JSON | None:
    """The patch `updateDefaultLabels` + `reconcileCMADAnnotationWithExistingNode` make."""
    meta = existing.get("metadata") or {}
    have = meta.get("labels") or {}
    want = default_labels(spec)
    labels: dict[str, str | None] = {}
    for key in DEFAULT_LABEL_KEYS:
        if key in want and have.get(key) != want[key]:
            labels[key] = want[key] or None
    patch: JSON = {"metadata": {}}
    if labels:
        patch["metadata"]["labels"] = labels
    if (meta.get("annotations") or {}).get(CMAD_ANNOTATION) != "true":
        patch["metadata"]["annotations"] = {CMAD_ANNOTATION: "true"}
    return patch if patch["metadata"] else None


async def try_register(client: ApiClient, spec: NodeSpec, status: JSON) -> JSON | None:
    """POST the Node, or reconcile the existing one; the Node (None: it vanished meanwhile)."""
    try:
        created = await client.request("POST", "/api/v1/nodes", body=initial_node(spec, status))
    except ApiStatusError as exc:
        if exc.reason != "AlreadyExists":
            raise
    else:
        return created
    try:
        existing = await client.request("GET", f"/api/v1/nodes/{spec.name}")
    except ApiStatusError as exc:
        if exc.code == 404:
            return None  # deleted in between: POST again
        raise
    patch = reconcile_existing(spec, existing)
    if patch:
        # Upstream patches through PatchNodeStatus; the labels and annotation are metadata,
        # so here they go to the main resource.
        existing = await client.request(
            "PATCH", f"/api/v1/nodes/{spec.name}", body=patch, content_type=STRATEGIC
        )
    return existing
