"""EndpointSlice and legacy Endpoints controllers.

EndpointSlice (staging/src/k8s.io/endpointslice/utils.go podToEndpoint): serving = pod Ready,
terminating = deletionTimestamp set, ready = publishNotReadyAddresses or (serving and not
terminating); terminating pods are kept, terminal or IP-less pods dropped.
Endpoints (pkg/controller/endpoint/endpoints_controller.go): ready pods in `addresses`,
not-ready ones in `notReadyAddresses`, terminating ones dropped unless publishNotReadyAddresses.
Both follow pods only: no node-based logic, as upstream.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from pytest_k8sdr.sim.apimachinery.errors import ApiError
from pytest_k8sdr.sim.apimachinery.meta import Key, is_terminating, key_of, meta, owner_reference
from pytest_k8sdr.sim.apimachinery.selectors import map_selector_matches
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.apimachinery.wellknown import LABEL_ZONE
from pytest_k8sdr.sim.controllers.controller import Controller
from pytest_k8sdr.sim.controllers.podutil import pod_is_ready, pod_is_terminal
from pytest_k8sdr.sim.controllers.workqueue import WorkQueue

NAME_SLICES = "endpointslice"
NAME_ENDPOINTS = "endpoint"
MANAGED_BY = "endpointslice-controller.k8s.io"
MAX_ENDPOINTS_PER_SLICE = 100  # --max-endpoints-per-slice default


def should_be_in_endpoints(pod: JSON, include_terminating: bool) -> bool:
    """pkg/api/v1/endpoints ShouldPodBeInEndpoints."""
    if pod_is_terminal(pod):
        return False
    if not (pod.get("status") or {}).get("podIP"):
        return False
    return include_terminating or not is_terminating(pod)


def resolve_port(pod: JSON, port: JSON) -> int | None:
    """The pod's port for a Service port's targetPort (podutil.FindPort)."""
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for c in (pod.get("spec") or {}).get("containers") or ():
        for cp in c.get("ports") or ():
            if cp.get("name") == target and (cp.get("protocol") or "TCP") == (
                port.get("protocol") or "TCP"
            ):
                return int(cp["containerPort"])
    return None


class _ServiceFollower(Controller):
    """Queues a Service whenever it or a pod it selects changes."""

    name: ClassVar[str]

    def start(self) -> list[asyncio.Task[None]]:
        """Follow services, pods and nodes (for zones)."""
        self.services = self.informers.get("services")
        self.pods = self.informers.get("pods")
        self.nodes = self.informers.get("nodes")
        # Which pods each Service selects, kept up to date per event so a sync never scans
        # the namespace (30,000 pods in one namespace is a case we plan for).
        self.members: dict[Key, dict[Key, None]] = {}
        # Services by (namespace, one label pair of their selector): a pod event looks only
        # at Services that could select it.
        self.by_pair: dict[tuple[str, str, str], dict[Key, JSON]] = {}
        self.queue: WorkQueue[Key] = WorkQueue(self.name, self._sync)
        # At start the pods' replay fills the memberships: no per-Service namespace scan.
        self._starting = True
        self.watch(self.services, self._on_service)
        self.watch(self.pods, self._on_pod)
        self._starting = False
        self._extra_handlers()
        return [self._spawn(self.queue.run(), "queue")]

    def _extra_handlers(self) -> None:
        pass

    def _on_service(self, etype: str, old: JSON | None, new: JSON | None) -> None:
        key = key_of(new or old or {})
        old_sel = ((old or {}).get("spec") or {}).get("selector")
        new_sel = ((new or {}).get("spec") or {}).get("selector")
        if old is not None and old_sel:
            pair = (key[0], *sorted(old_sel.items())[0])
            self.by_pair.get(pair, {}).pop(key, None)
        if new is not None and new_sel:
            self.by_pair.setdefault((key[0], *sorted(new_sel.items())[0]), {})[key] = new
        if new is None:
            self.members.pop(key, None)
        elif self._starting:
            self.members.setdefault(key, {})
        elif old is None or old_sel != new_sel or key not in self.members:
            self.members[key] = {
                key_of(p): None
                for p in self.pods.by_namespace.get(key[0], {}).values()
                if map_selector_matches(new_sel, meta(p).get("labels"))
            }
        self.queue.add(key)

    def _on_pod(self, etype: str, old: JSON | None, new: JSON | None) -> None:
        obj = new or old or {}
        pod_key = key_of(obj)
        new_labels = meta(new).get("labels") if new is not None else None
        old_labels = meta(old).get("labels") if old is not None else None
        candidates: dict[Key, JSON] = {}
        for labels in (old_labels, new_labels):
            for pair in (labels or {}).items():
                candidates.update(self.by_pair.get((pod_key[0], *pair), {}))
        for svc in candidates.values():
            selector = (svc.get("spec") or {}).get("selector")
            now_in = new is not None and map_selector_matches(selector, new_labels)
            was_in = old is not None and map_selector_matches(selector, old_labels)
            if not now_in and not was_in:
                continue
            svc_key = key_of(svc)
            members = self.members.setdefault(svc_key, {})
            if now_in:
                members[pod_key] = None
            else:
                members.pop(pod_key, None)
            self.queue.add(svc_key)

    def _selected_pods(self, svc: JSON) -> list[JSON]:
        ns = meta(svc).get("namespace") or ""
        bucket = self.pods.by_namespace.get(ns, {})
        pods = [bucket[k[1]] for k in self.members.get(key_of(svc), {}) if k[1] in bucket]
        return sorted(pods, key=lambda p: str(meta(p)["name"]))

    def _sync(self, key: Key) -> None:
        raise NotImplementedError


class EndpointSliceController(_ServiceFollower):
    """Keeps EndpointSlices of selector Services."""

    name = NAME_SLICES

    def _extra_handlers(self) -> None:
        self.slices = self.informers.get("endpointslices")
        self.watch(self.slices, self._on_slice)

    def _on_slice(self, etype: str, old: JSON | None, new: JSON | None) -> None:
        obj = new or old or {}
        labels = meta(obj).get("labels") or {}
        if (
            labels.get("endpointslice.kubernetes.io/managed-by") == MANAGED_BY
            and etype == "DELETED"
        ):
            svc = labels.get("kubernetes.io/service-name")
            if svc:
                self.queue.add((meta(obj).get("namespace") or "", svc))

    def _sync(self, key: Key) -> None:
        ns, name = key
        svc = self.services.get(ns, name)
        existing = [
            s
            for s in self.slices.by_namespace.get(ns, {}).values()
            if (meta(s).get("labels") or {}).get("kubernetes.io/service-name") == name
            and (meta(s).get("labels") or {}).get("endpointslice.kubernetes.io/managed-by")
            == MANAGED_BY
        ]
        if svc is None or not (svc.get("spec") or {}).get("selector"):
            for s in existing:
                self._delete(s)
            return
        spec = svc.get("spec") or {}
        publish = bool(spec.get("publishNotReadyAddresses"))
        groups: dict[tuple[tuple[str, int, str], ...], list[JSON]] = {}
        for pod in self._selected_pods(svc):
            if not should_be_in_endpoints(pod, include_terminating=True):
                continue
            ports: list[tuple[str, int, str]] = []
            for port in spec.get("ports") or ():
                number = resolve_port(pod, port)
                if number is not None:
                    ports.append(
                        (str(port.get("name") or ""), number, str(port.get("protocol") or "TCP"))
                    )
            serving = pod_is_ready(pod)
            terminating = is_terminating(pod)
            node_name = (pod.get("spec") or {}).get("nodeName")
            endpoint: JSON = {
                "addresses": [pod["status"]["podIP"]],
                "conditions": {
                    "ready": publish or (serving and not terminating),
                    "serving": serving,
                    "terminating": terminating,
                },
                "targetRef": {
                    "kind": "Pod",
                    "namespace": ns,
                    "name": meta(pod)["name"],
                    "uid": meta(pod).get("uid"),
                },
            }
            if node_name:
                endpoint["nodeName"] = node_name
                node = self.nodes.get(None, node_name)
                zone = (meta(node).get("labels") or {}).get(LABEL_ZONE) if node else None
                if zone:
                    endpoint["zone"] = zone
            groups.setdefault(tuple(ports), []).append(endpoint)
        wanted: list[JSON] = []
        for ports_key, endpoints in sorted(groups.items()):
            for i in range(0, len(endpoints), MAX_ENDPOINTS_PER_SLICE):
                wanted.append(
                    {
                        "ports": [
                            {"name": n, "port": p, "protocol": proto} for n, p, proto in ports_key
                        ],
                        "endpoints": endpoints[i : i + MAX_ENDPOINTS_PER_SLICE],
                    }
                )
        if not wanted:
            # A Service with no endpoints still gets one empty slice (reconciler.go placeholder).
            wanted.append({"ports": [], "endpoints": []})
        existing.sort(key=lambda s: meta(s)["name"])
        for i, body in enumerate(wanted):
            if i < len(existing):
                current = existing[i]
                if (
                    current.get("endpoints") == body["endpoints"]
                    and current.get("ports") == body["ports"]
                ):
                    continue
                try:
                    live = self.store.get("endpointslices", ns, meta(current)["name"])
                except ApiError as exc:
                    if exc.code != 404:
                        raise
                    self.queue.add(key)
                    continue
                live["endpoints"] = body["endpoints"]
                live["ports"] = body["ports"]
                self.store.update("endpointslices", ns, meta(current)["name"], live)
            else:
                labels = dict(meta(svc).get("labels") or {})
                labels["kubernetes.io/service-name"] = name
                labels["endpointslice.kubernetes.io/managed-by"] = MANAGED_BY
                self.store.create(
                    "endpointslices",
                    ns,
                    {
                        "apiVersion": "discovery.k8s.io/v1",
                        "kind": "EndpointSlice",
                        "metadata": {
                            "generateName": f"{name}-",
                            "labels": labels,
                            "ownerReferences": [owner_reference(svc, "v1", "Service")],
                        },
                        "addressType": "IPv4",
                        **body,
                    },
                )
        for extra in existing[len(wanted) :]:
            self._delete(extra)

    def _delete(self, obj: JSON) -> None:
        try:
            self.store.delete("endpointslices", *key_of(obj))
        except ApiError as exc:
            if exc.code != 404:
                raise


class EndpointsController(_ServiceFollower):
    """Keeps the legacy Endpoints object of selector Services."""

    name = NAME_ENDPOINTS

    def _sync(self, key: Key) -> None:
        ns, name = key
        svc = self.services.get(ns, name)
        if svc is None or not (svc.get("spec") or {}).get("selector"):
            if svc is None:
                try:
                    self.store.delete("endpoints", ns, name)
                except ApiError as exc:
                    if exc.code != 404:
                        raise
            return
        spec = svc.get("spec") or {}
        publish = bool(spec.get("publishNotReadyAddresses"))
        subsets: dict[tuple[tuple[str, int, str], ...], tuple[list[JSON], list[JSON]]] = {}
        for pod in self._selected_pods(svc):
            if not should_be_in_endpoints(pod, include_terminating=publish):
                continue
            ports: list[tuple[str, int, str]] = []
            for port in spec.get("ports") or ():
                number = resolve_port(pod, port)
                if number is not None:
                    ports.append(
                        (str(port.get("name") or ""), number, str(port.get("protocol") or "TCP"))
                    )
            address: JSON = {
                "ip": pod["status"]["podIP"],
                "targetRef": {
                    "kind": "Pod",
                    "namespace": ns,
                    "name": meta(pod)["name"],
                    "uid": meta(pod).get("uid"),
                },
            }
            node_name = (pod.get("spec") or {}).get("nodeName")
            if node_name:
                address["nodeName"] = node_name
            ready, not_ready = subsets.setdefault(tuple(sorted(ports)), ([], []))
            (ready if publish or pod_is_ready(pod) else not_ready).append(address)
        body: list[JSON] = []
        for ports_key, (ready, not_ready) in sorted(subsets.items()):
            subset: JSON = {}
            if ready:
                subset["addresses"] = sorted(ready, key=lambda a: str(a["ip"]))
            if not_ready:
                subset["notReadyAddresses"] = sorted(not_ready, key=lambda a: str(a["ip"]))
            subset["ports"] = [
                {"name": n, "port": p, "protocol": proto} if n else {"port": p, "protocol": proto}
                for n, p, proto in ports_key
            ]
            body.append(subset)
        labels = dict(meta(svc).get("labels") or {})
        labels["endpointslice.kubernetes.io/skip-mirror"] = "true"
        try:
            live = self.store.get("endpoints", ns, name)
        except ApiError as exc:
            if exc.code != 404:
                raise
            self.store.create(
                "endpoints",
                ns,
                {
                    "apiVersion": "v1",
                    "kind": "Endpoints",
                    "metadata": {"name": name, "labels": labels},
                    "subsets": body,
                },
            )
            return
        if (live.get("subsets") or []) == body and (meta(live).get("labels") or {}) == labels:
            return
        live["subsets"] = body
        live["metadata"]["labels"] = labels
        self.store.update("endpoints", ns, name, live)
