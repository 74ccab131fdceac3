"""The serviceaccount and root-ca-certificate-publisher controllers.

pkg/controller/serviceaccount/serviceaccounts_controller.go: every active namespace has a
`default` ServiceAccount (created again when deleted), including the namespaces that exist
when the controller starts. pkg/controller/certificates/rootcacertpublisher/publisher.go:
every namespace has the `kube-root-ca.crt` ConfigMap holding the cluster CA, which the pods'
projected service-account volumes read.
"""

from __future__ import annotations

import asyncio

from pytest_k8sdr.sim.apimachinery.errors import ApiError
from pytest_k8sdr.sim.apimachinery.meta import is_terminating, meta
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.apiserver.admission.serviceaccount import ROOT_CA_CONFIGMAP
from pytest_k8sdr.sim.controllers.controller import Controller
from pytest_k8sdr.sim.controllers.workqueue import WorkQueue

__all__ = ["RootCACertPublisher", "ServiceAccountsController"]

_CA_DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters."
)


class _PerNamespace(Controller):
    """Keeps one object in every active namespace."""

    plural = ""
    object_name = ""

    def start(self) -> list[asyncio.Task[None]]:
        """Fill in the namespaces there are, then follow namespaces and the kept objects.

        The first pass runs at once rather than in the queue's task, so that a pod created
        right after the control plane starts finds its namespace's account (upstream's
        controller has long synced before anyone creates a pod).
        """
        self.namespaces = self.informers.get("namespaces")
        self.queue: WorkQueue[str] = WorkQueue(self.name, self._sync)
        for ns in self.namespaces.list():
            self._sync(meta(ns)["name"])
        self.watch(self.namespaces, self._on_namespace)
        self.watch(self.informers.get(self.plural), self._on_object)
        return [self._spawn(self.queue.run(), "queue")]

    def _on_namespace(self, etype: str, old: JSON | None, new: JSON | None) -> None:
        if new is not None and not is_terminating(new):
            self.queue.add(meta(new)["name"])

    def _on_object(self, etype: str, old: JSON | None, new: JSON | None) -> None:
        if etype == "DELETED" and old is not None and meta(old)["name"] == self.object_name:
            self.queue.add(meta(old).get("namespace", ""))

    def body(self) -> JSON:
        """The object to create."""
        raise NotImplementedError

    def _sync(self, ns: str) -> None:
        namespace = self.namespaces.get(None, ns)
        if namespace is None or is_terminating(namespace):
            return
        if self.store.storage.find(self.plural, ns, self.object_name) is not None:
            return
        try:
            self.store.create(self.plural, ns, self.body())
        except ApiError as exc:
            # Gone or closing meanwhile, or created by someone else: nothing left to do.
            if exc.code not in (403, 404, 409):
                raise


class ServiceAccountsController(_PerNamespace):
    """A `default` ServiceAccount in every namespace."""

    name = "serviceaccount"
    plural = "serviceaccounts"
    object_name = "default"

    def body(self) -> JSON:
        """The default ServiceAccount."""
        return {"metadata": {"name": "default"}}


class RootCACertPublisher(_PerNamespace):
    """The cluster CA as `kube-root-ca.crt` in every namespace."""

    name = "root-ca-certificate-publisher"
    plural = "configmaps"
    object_name = ROOT_CA_CONFIGMAP

    def body(self) -> JSON:
        """The CA ConfigMap."""
        return {
            "metadata": {
                "name": ROOT_CA_CONFIGMAP,
                "annotations": {"kubernetes.io/description": _CA_DESCRIPTION},
            },
            "data": {"ca.crt": self.ctx.root_ca.decode()},
        }
