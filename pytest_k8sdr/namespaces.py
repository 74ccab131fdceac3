"""Test namespaces: created labelled as ours, journaled, deleted at teardown or by recover."""

from __future__ import annotations

import contextlib
import re
import uuid
from dataclasses import dataclass

from pytest_k8sdr.cluster import MANAGED_BY, Cluster
from pytest_k8sdr.errors import NotFound
from pytest_k8sdr.undo import Disruption, UndoEnv, UndoStack, disruption_kind


@disruption_kind
@dataclass(frozen=True)
class NamespaceCreated(Disruption):
    """A test's own namespace; undone by deleting it (and so everything the test deployed)."""

    kind = "namespace"
    disruptive = False
    needs_cluster = True
    name: str

    def summary(self) -> str:
        """``create the test namespace NAME``."""
        return f"create the test namespace {self.name}"

    def undoing(self) -> str:
        """``delete the test namespace NAME``."""
        return f"delete the test namespace {self.name}"

    def undo(self, env: UndoEnv) -> None:
        """Delete the namespace if it exists and carries our label (never anyone else's)."""
        cluster = env.require_cluster(f"deleting the test namespace {self.name}")
        found = cluster.get_raw("namespaces", self.name)
        if found is None:
            return
        labels = found["metadata"].get("labels") or {}
        if labels.get(MANAGED_BY[0]) != MANAGED_BY[1]:
            return
        with contextlib.suppress(NotFound):  # deleted since it was read: done all the same
            cluster.call(cluster.core.delete_namespace, self.name, _preload_content=False)


def namespace_name(nodeid: str) -> str:
    """A fresh namespace name for a test: ``k8sdr-<test name>-<6 hex>``."""
    slug = re.sub(r"[^a-z0-9]+", "-", nodeid.rsplit("::", 1)[-1].lower()).strip("-")
    return f"k8sdr-{slug[:40].rstrip('-')}-{uuid.uuid4().hex[:6]}"


def create_test_namespace(cluster: Cluster, name: str, undo: UndoStack) -> str:
    """Create `name`, labelled as ours, with its deletion registered on `undo` first."""
    undo.push(NamespaceCreated(name), UndoEnv(cluster=cluster))
    body = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {MANAGED_BY[0]: MANAGED_BY[1]}},
    }
    cluster.call(cluster.core.create_namespace, body, _preload_content=False)
    return name
