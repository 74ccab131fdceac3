"""ClusterIP and NodePort allocation for Services, as the API server does it.

Upstream allocates in the API server's Service registry, not in a controller
(pkg/registry/core/service/ipallocator and portallocator, driven from
pkg/registry/core/service/storage/alloc.go); so here it sits beside the Service strategy.
"""

from __future__ import annotations

import random

from pytest_k8sdr.sim.apimachinery.errors import ApiError, invalid
from pytest_k8sdr.sim.apimachinery.types import JSON

__all__ = ["ServiceAllocator"]


class ServiceAllocator:
    """The clusterIPs and nodePorts taken in one cluster."""

    def __init__(self) -> None:
        self._cluster_ips: set[str] = set()
        self._node_ports: set[int] = set()
        self._rng = random.Random()

    def allocate(self, obj: JSON, old: JSON | None) -> None:
        """Give a Service its clusterIP and nodePorts; 422 when a requested one is taken.

        Nothing is reserved until every check passed; ports an update drops are released.
        """
        spec = obj.setdefault("spec", {})
        old_spec = (old or {}).get("spec") or {}
        name = obj["metadata"].get("name", "")
        if spec.get("clusterIP") in (None, "") and old_spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
        if spec.get("clusterIP") in (None, ""):
            # Addresses are strings only: nobody connects to a ClusterIP in the simulator.
            ip = ""
            while not ip or ip in self._cluster_ips:
                n = self._rng.randrange(10, 65000)
                ip = f"10.96.{n // 256}.{n % 256}"
            spec["clusterIP"] = ip
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        mine = {p.get("nodePort") for p in old_spec.get("ports") or [] if p.get("nodePort")}
        by_port = {p.get("port"): p.get("nodePort") for p in old_spec.get("ports") or []}
        taken = self._node_ports - mine
        wanted: set[int] = set()
        if spec.get("type") in ("NodePort", "LoadBalancer"):
            for n, port in enumerate(spec.get("ports") or []):
                want = port.get("nodePort") or by_port.get(port.get("port"))
                if not want:
                    continue
                field_path = f"spec.ports[{n}].nodePort"
                if not 30000 <= int(want) <= 32767:
                    raise invalid(
                        "Service",
                        name,
                        [
                            {
                                "type": "FieldValueInvalid",
                                "field": field_path,
                                "message": f"Invalid value: {want}: provided port is not in "
                                "the valid range. The range of valid ports is 30000-32767",
                            }
                        ],
                    )
                if int(want) in taken or int(want) in wanted:
                    raise invalid(
                        "Service",
                        name,
                        [
                            {
                                "type": "FieldValueInvalid",
                                "field": field_path,
                                "message": f"Invalid value: {want}: provided port is "
                                "already allocated",
                            }
                        ],
                    )
                port["nodePort"] = int(want)
                wanted.add(int(want))
            for port in spec.get("ports") or []:
                if not port.get("nodePort"):
                    free = [p for p in range(30000, 32768) if p not in taken and p not in wanted]
                    if not free:
                        raise ApiError(500, "InternalError", "range is full: no NodePort left")
                    port["nodePort"] = self._rng.choice(free)
                    wanted.add(port["nodePort"])
        else:
            for port in spec.get("ports") or []:
                port.pop("nodePort", None)
        self._node_ports = taken | wanted
        if old_spec.get("clusterIP") and old_spec["clusterIP"] != spec["clusterIP"]:
            self._cluster_ips.discard(old_spec["clusterIP"])
        if spec["clusterIP"] != "None":
            self._cluster_ips.add(spec["clusterIP"])

    def reserve(self, obj: JSON) -> None:
        """Mark an existing Service's clusterIP and nodePorts taken (a restarted server)."""
        spec = obj.get("spec") or {}
        if spec.get("clusterIP") not in (None, "", "None"):
            self._cluster_ips.add(spec["clusterIP"])
        for port in spec.get("ports") or []:
            if port.get("nodePort"):
                self._node_ports.add(port["nodePort"])

    def release(self, obj: JSON) -> None:
        """Free the Service's clusterIP and nodePorts."""
        spec = obj.get("spec") or {}
        self._cluster_ips.discard(spec.get("clusterIP", ""))
        for port in spec.get("ports") or []:
            self._node_ports.discard(port.get("nodePort", 0))
